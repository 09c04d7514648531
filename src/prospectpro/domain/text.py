"""What text from a client may be: the one rule every edge applies before anything reaches the store.

No control character (C0, DEL, C1) means anything in a business type, a place name, a URL, a
label or an id, and PostgreSQL refuses NUL in text and JSON outright (a 500 if it got that far,
where SQLite would have stored it). Lone surrogates cannot be encoded for either database.
So both stores see the same thing: such text is refused at the edge, with a message.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

_UNSTORABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_UUID = re.compile("[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# The same rule for /openapi.json, so generated clients and schemathesis know it (JSON Schema regex).
CLEAN_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"


def unstorable(value: str) -> str | None:
    """A description of the first character text must not hold, or None when it is clean."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    return f"U+{ord(found.group()):04X} at position {found.start() + 1}"


def _clean(value: str) -> str:
    problem = unstorable(value)
    if problem is not None:
        raise PydanticCustomError(
            "control_character", "must not contain control characters ({problem})", {"problem": problem}
        )
    return value


# The check alone, for a type with constraints of its own:
# Annotated[str, StringConstraints(...), NO_CONTROL_CHARACTERS].
NO_CONTROL_CHARACTERS = AfterValidator(_clean)
# Every string field of an API request model: the check, and the pattern that documents it.
CleanStr = Annotated[str, NO_CONTROL_CHARACTERS, Field(json_schema_extra={"pattern": CLEAN_PATTERN})]


def parse_id(value: str) -> str | None:
    """A job or campaign id (a UUID as the store writes it, any case) or None for anything else,
    which names nothing: the edges answer "not found" without asking the store."""
    return value.lower() if _UUID.fullmatch(value) else None
