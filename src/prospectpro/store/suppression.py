"""The suppression list: addresses and domains never stored on a new lead, exported or verified.

Installation-wide: a person who asked not to be processed (Hunter's 451, or
``prospectpro suppress add``, or ``leads forget``) is suppressed for every
owner. A domain entry suppresses every address at that domain.

``forget_cached`` removes an address from every cached provider answer
(``api_calls.response`` and its request key), so a later campaign reusing
the answer cannot bring it back.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, String, cast, delete, select, update

from prospectpro.domain.normalize import normalize_email
from prospectpro.errors import InvalidInput
from prospectpro.store.schema import api_calls, discovery_jobs, job_candidates, suppressions
from prospectpro.store.upsert import upsert

EMAIL = "email"
DOMAIN = "domain"


_BLANKS = " \t\r\n\f\v"


def parse_entry(value: str) -> tuple[str, str]:
    """An address or a domain as stored: (value lowercased, kind). InvalidInput for neither.

    An address that does not pass the syntax check is still taken as written (lowercased): suppressing it
    costs nothing, and the person asked.
    """
    # ASCII lowercasing: Unicode's can lengthen a string ("İ" → "i̇"), past the column's size.
    text = "".join(c.lower() if c.isascii() else c for c in value.strip(_BLANKS))
    if any(ord(c) < 32 for c in text):  # control characters (NUL among them) name nobody
        raise InvalidInput(f"{value!r} is neither an e-mail address nor a domain")
    if "@" in text:
        local, _, host = text.rpartition("@")
        if not local or not host:
            raise InvalidInput(f"{value!r} is not an e-mail address")
        address = normalize_email(text) or text
        return ("".join(c.lower() if c.isascii() else c for c in address))[:320], EMAIL
    domain = text[4:] if text.startswith("www.") and _domain_like(text[4:]) else text
    if not _domain_like(domain):
        raise InvalidInput(f"{value!r} is neither an e-mail address nor a domain")
    return domain, DOMAIN


def _domain_like(text: str) -> bool:
    return "." in text and not text.startswith(".") and not text.endswith(".") and not any(c in text for c in "/@")


def add(conn: Connection, value: str, reason: str, now: datetime) -> str:
    entry, kind = parse_entry(value)
    upsert(conn, suppressions, [{"value": entry, "kind": kind, "reason": reason, "created_at": now}], ["value"], ("reason",))
    return entry


def remove(conn: Connection, value: str) -> bool:
    entry, _ = parse_entry(value)
    return conn.execute(delete(suppressions).where(suppressions.c.value == entry)).rowcount > 0


def entries(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(suppressions).order_by(suppressions.c.value)).all()
    return [
        {"value": r.value, "kind": r.kind, "reason": r.reason, "created_at": r.created_at.isoformat()} for r in rows
    ]


def suppressed(conn: Connection, addresses: Iterable[str]) -> set[str]:
    """Of these addresses, the ones suppressed (by address or by their domain), lowercased."""
    wanted = {a.lower() for a in addresses if a}
    if not wanted:
        return set()
    domains = {a.rsplit("@", 1)[-1] for a in wanted}
    hits = set(
        conn.execute(select(suppressions.c.value).where(suppressions.c.value.in_(sorted(wanted | domains)))).scalars()
    )
    return {a for a in wanted if a in hits or a.rsplit("@", 1)[-1] in hits}


def scrub(value: Any, address: str) -> Any:
    """``value`` (JSON) without ``address``: list items naming it dropped, keys and strings equal to it removed."""
    if isinstance(value, str):
        return None if value.lower() == address else value
    if isinstance(value, list):
        return [scrub(v, address) for v in value if not _names(v, address)]
    if isinstance(value, dict):
        return {k: scrub(v, address) for k, v in value.items() if k.lower() != address}
    return value


def _names(value: Any, address: str) -> bool:
    """A list item that is the address, or an object one of whose direct values is."""
    if isinstance(value, str):
        return value.lower() == address
    if isinstance(value, dict):
        return any(isinstance(v, str) and v.lower() == address for v in value.values()) or any(
            isinstance(v, dict) and _names(v, address) for v in value.values()
        )
    return False


def contains_pattern(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, its own % and _ taken literally (escape character \\)."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def forget_cached(conn: Connection, address: str, owner_id: str | None = None) -> int:
    """Remove the address from cached provider answers (and in-flight candidates); returns rows changed."""
    address = address.lower()
    pattern = contains_pattern(address)
    changed = 0
    query = select(api_calls.c.id, api_calls.c.request, api_calls.c.response).where(
        cast(api_calls.c.response, String).ilike(pattern, escape="\\")
        | cast(api_calls.c.request, String).ilike(pattern, escape="\\")
    )
    if owner_id is not None:
        query = query.where(api_calls.c.owner_id == owner_id)
    for row in conn.execute(query).all():
        conn.execute(
            update(api_calls)
            .where(api_calls.c.id == row.id)
            .values(
                request=scrub(row.request, address) or {"forgotten": True},
                response=scrub(row.response, address),
                reusable_until=None,  # an answer with a hole in it is not served again
            )
        )
        changed += 1
    candidates = select(job_candidates.c.id, job_candidates.c.enrichment).where(
        cast(job_candidates.c.enrichment, String).ilike(pattern, escape="\\")
    )
    if owner_id is not None:
        owned = select(discovery_jobs.c.id).where(discovery_jobs.c.owner_id == owner_id)
        candidates = candidates.where(job_candidates.c.job_id.in_(owned))
    for candidate in conn.execute(candidates).all():
        enrichment = scrub(candidate.enrichment, address)
        if isinstance(enrichment, dict) and enrichment.get("email") is None:
            enrichment.update(email_source=None, email_status=None, email_confidence=None)
        conn.execute(
            update(job_candidates).where(job_candidates.c.id == candidate.id).values(enrichment=enrichment)
        )
        changed += 1
    return changed


def entries_set(conn: Connection) -> set[str]:
    """Every suppressed address and domain (what an enrichment stage checks against, in memory)."""
    return set(conn.execute(select(suppressions.c.value)).scalars())


def without_suppressed(lead: dict[str, Any], blocked: set[str]) -> dict[str, Any]:
    """A lead as shown or exported: a suppressed address (and its enrichment traces) removed."""
    address = str(lead.get("email") or "").lower()
    if not blocked:
        return lead
    out = dict(lead)
    if address in blocked:
        out.update(email=None, email_status=None, email_source=None, email_confidence=None)
    if out.get("enrichment"):
        enrichment = out["enrichment"]
        for item in blocked:
            enrichment = scrub(enrichment, item)
        out["enrichment"] = enrichment
    return out
