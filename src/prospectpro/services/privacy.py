"""The people behind the addresses: the suppression list and ``forget``.

A suppressed address (or every address at a suppressed domain) is never
stored on a new lead, exported or verified. ``forget`` removes an address
from every lead, export and cached provider answer — the installation's, or
one owner's own through the API — and suppresses it, so no later campaign
brings it back.
"""

from __future__ import annotations

from typing import Any

from prospectpro.domain.clock import utcnow
from prospectpro.errors import InvalidInput
from prospectpro.store import suppression
from prospectpro.store.db import Database
from prospectpro.store.leads import forget_email

USER_REASON = "added by a user"
FORGOTTEN = "forgotten on request"


def suppress(db: Database, value: str, reason: str = USER_REASON) -> str:
    with db.write() as conn:
        return suppression.add(conn, value, reason, utcnow())


def unsuppress(db: Database, value: str) -> bool:
    with db.write() as conn:
        return suppression.remove(conn, value)


def suppressed(db: Database) -> list[dict[str, Any]]:
    with db.read() as conn:
        return suppression.entries(conn)


def forget(db: Database, address: str, owner_id: str | None = None) -> dict[str, Any]:
    """Remove the address everywhere (of ``owner_id`` only, when given) and suppress it, in one transaction."""
    entry, kind = suppression.parse_entry(address)
    if kind != suppression.EMAIL:
        raise InvalidInput("forget takes an e-mail address; suppress a whole domain with suppress add")
    with db.write() as conn:
        leads = forget_email(conn, entry, owner_id)
        cached = suppression.forget_cached(conn, entry, owner_id)
        suppression.add(conn, entry, FORGOTTEN, utcnow())
    return {"email": entry, "leads": leads, "cached_answers": cached, "suppressed": True}
