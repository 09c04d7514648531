"""Secrets never leave the gate: every provider secret becomes "[redacted]" in what is stored, logged or raised.

A key can travel in a query string (Hunter, NeverBounce), so its
percent-encoded spelling is redacted too; and some providers echo the key in
their error text or body, so bodies are walked, not only messages.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "[redacted]"


class Redactor:
    """Replaces every one of a provider's secrets (and their URL-encoded forms) in text and JSON values."""

    __slots__ = ("_escaped", "_pattern")

    def __init__(self, secrets: Iterable[str]) -> None:
        forms = {form for secret in secrets if secret for form in (secret, quote(secret, safe=""), quote_plus(secret))}
        # Longest first, so that a secret containing another is replaced whole.
        ordered = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        # A secret that JSON spells differently (quotes, backslashes, control or non-ASCII characters)
        # cannot be looked for in JSON text: such values are always walked.
        self._escaped = any(json.dumps(form)[1:-1] != form for form in forms)

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, value: str) -> str:
        return value if self._pattern is None else self._pattern.sub(REDACTED, value)

    def json_value(self, value: Any) -> Any:
        """The value as JSON keeps it (a JSON-able copy), redacted; walked only when a secret is in its text."""
        encoded = json.dumps(value, default=str)
        copy = json.loads(encoded)
        if self._pattern is None or (not self._escaped and self._pattern.search(encoded) is None):
            return copy
        return self.value(copy)

    def value(self, value: Any) -> Any:
        """A copy of a JSON-able value with every string (keys too) redacted; other values as they are."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


class _SecretsFilter(logging.Filter):
    """Redacts every registered provider secret from records of the HTTP libraries' own loggers.

    httpx logs each request's URL at INFO ("HTTP Request: GET https://…?api_key=…"), and
    keys travel in query strings: its records are rewritten before any handler sees them.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._redactors: dict[str, Redactor] = {}  # by pattern: one per set of secrets, however many clients

    def add(self, redactor: Redactor) -> None:
        if redactor._pattern is not None:
            with self._lock:
                self._redactors = {**self._redactors, redactor._pattern.pattern: redactor}

    def filter(self, record: logging.LogRecord) -> bool:
        redactors = self._redactors.values()
        if not redactors:
            return True
        message = record.getMessage()
        clean = message
        for redactor in redactors:
            clean = redactor.text(clean)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = _SecretsFilter()
# Filters of a logger see only its own records, not its children's: each logger that may show a URL.
_HTTP_LOGGERS = ("httpx", "httpcore", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy")
for _name in _HTTP_LOGGERS:
    logging.getLogger(_name).addFilter(_FILTER)


def guard_http_logs(redactor: Redactor) -> None:
    """Keep this provider's secrets out of the HTTP libraries' log records (for the life of the process)."""
    _FILTER.add(redactor)
