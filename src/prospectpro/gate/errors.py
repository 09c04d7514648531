"""What a provider call can fail with. Messages are already redacted."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum


class ProviderErrorKind(StrEnum):
    auth = "auth"  # bad or missing key, billing off: not retried, opens the breaker
    bad_request = "bad_request"  # the provider refused the request itself: not retried
    rate_limited = "rate_limited"  # retried while attempts last, then this
    quota_exhausted = "quota_exhausted"  # credits or daily quota gone: stop calling until reset
    unavailable = "unavailable"  # 5xx, connection refused: retried, then this
    timeout = "timeout"
    malformed = "malformed"  # a body we cannot read (truncated, not JSON, wrong shape)
    too_large = "too_large"  # over the response size cap
    breaker_open = "breaker_open"  # not called: the provider failed repeatedly just now
    forbidden = "forbidden"  # the provider says this item must not be processed (Hunter 451)


class ProviderError(Exception):
    """A provider call that did not give an answer. ``str()`` is safe to store and show."""

    def __init__(
        self, provider: str, kind: ProviderErrorKind, message: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.kind = kind
        self.message = message
        self.retry_after = retry_after

    @property
    def reason(self) -> str:
        """For ``failed_sources``: "auth: API key not valid"."""
        return f"{self.kind.value}: {self.message}"


class OverBudget(Exception):
    """The call was not made: its cost would cross the campaign's budget or the owner's monthly cap."""

    def __init__(self, provider: str, operation: str, cost: Decimal, *, limit: str) -> None:
        super().__init__(f"{provider} {operation} (${cost}) would cross the {limit}")
        self.provider = provider
        self.operation = operation
        self.cost = cost
        self.limit = limit  # "campaign budget" | "monthly budget" | "lead cap"
