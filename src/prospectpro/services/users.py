"""Who is calling: users with API keys, and anonymous sessions.

Tokens are 256-bit random strings shown once and stored only as SHA-256
hashes (a fast hash is enough for high-entropy secrets). A session is an
anonymous user with one session token; it sees only its own jobs.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cachetools import TTLCache
from sqlalchemy import Connection, select, update

from prospectpro.domain.clock import iso, utcnow
from prospectpro.domain.tiers import money_text
from prospectpro.errors import InvalidInput, NotFound
from prospectpro.services.rate_limits import admit_sessions
from prospectpro.store.db import Database
from prospectpro.store.schema import credentials, users

API_KEY_PREFIX = "ppk_"
SESSION_PREFIX = "pps_"

_INSERT_USER = users.insert()
_INSERT_CREDENTIAL = credentials.insert()


@dataclass(frozen=True)
class Principal:
    user_id: str
    kind: str  # local | user | anonymous
    name: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def _insert(conn: Connection, *, names: Sequence[str], kind: str, credential_kind: str, prefix: str) -> list[tuple[Principal, str]]:
    if not names:
        return []
    now = utcnow()
    made = [(Principal(user_id=str(uuid.uuid4()), kind=kind, name=name), _new_token(prefix)) for name in names]
    conn.execute(
        _INSERT_USER,
        [{"id": p.user_id, "name": p.name, "kind": kind, "created_at": now, "revoked_at": None} for p, _ in made],
    )
    conn.execute(
        _INSERT_CREDENTIAL,
        [
            {
                "id": str(uuid.uuid4()),
                "user_id": p.user_id,
                "kind": credential_kind,
                "token_hash": hash_token(token),
                "prefix": token[: len(prefix) + 6],
                "created_at": now,
                "revoked_at": None,
            }
            for p, token in made
        ],
    )
    return made


def create_user(db: Database, name: str, *, monthly_budget: Decimal | None = None) -> tuple[Principal, str]:
    """A named user and its first API key (returned once); ``monthly_budget``: its spend cap per calendar month."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("user name must be 1–200 characters")
    budget = check_monthly_budget(monthly_budget)
    with db.write() as conn:
        made = _insert(conn, names=[name], kind="user", credential_kind="api_key", prefix=API_KEY_PREFIX)[0]
        if budget is not None:
            conn.execute(update(users).where(users.c.id == made[0].user_id).values(monthly_budget=budget))
        return made


MAX_MONTHLY_BUDGET = Decimal("100000000")  # what the store's Money column holds, with room


def check_monthly_budget(amount: Decimal | None) -> Decimal | None:
    """The amount as the store keeps it (4 decimals), or InvalidInput."""
    if amount is None:
        return None
    if not amount.is_finite() or amount < 0 or amount >= MAX_MONTHLY_BUDGET:
        raise InvalidInput(f"monthly budget must be 0 or more USD (below {MAX_MONTHLY_BUDGET:,}), got {amount}")
    if amount != amount.quantize(Decimal("0.0001")):
        raise InvalidInput(f"monthly budget must have at most 4 decimal places, got {amount}")
    return amount


def _one_user(conn: Connection, name_or_id: str) -> Any:
    rows = conn.execute(
        select(users).where(users.c.kind == "user", (users.c.id == name_or_id) | (users.c.name == name_or_id))
    ).all()
    if len(rows) != 1:
        raise NotFound(f"user {name_or_id} not found" if not rows else f"several users are named {name_or_id}; use the id")
    return rows[0]


def set_monthly_budget(db: Database, name_or_id: str, amount: Decimal | None) -> dict[str, Any]:
    """Set (or, with None, remove) a user's monthly budget; the gate enforces it on every paid call."""
    budget = check_monthly_budget(amount)
    with db.write() as conn:
        row = _one_user(conn, name_or_id)
        conn.execute(update(users).where(users.c.id == row.id).values(monthly_budget=budget))
    return {"id": row.id, "name": row.name, "monthly_budget": money_text(budget) if budget is not None else None}


def insert_sessions(conn: Connection, labels: Sequence[str | None]) -> list[tuple[Principal, str]]:
    """Anonymous sessions, one per label. A label (e.g. the old client's sessionUserId) is a name, never an identity."""
    names = [(label or "anonymous").strip()[:200] or "anonymous" for label in labels]
    return _insert(conn, names=names, kind="anonymous", credential_kind="session", prefix=SESSION_PREFIX)


def create_session(
    db: Database, label: str | None = None, *, limit: tuple[str, int] | None = None
) -> tuple[Principal, str]:
    """A new anonymous session; ``limit`` = (client address, sessions per minute) is checked in the same transaction."""
    with db.write() as conn:
        if limit is not None:
            [refused] = admit_sessions(conn, [limit], utcnow())
            if refused is not None:
                raise refused
        return insert_sessions(conn, [label])[0]


# Tokens seen recently, per database: most requests of a client carry the
# same token, and the submit path must not pay a read for it each time. A
# revoke in this process clears it; one in another process takes effect
# within AUTH_CACHE_SECONDS.
AUTH_CACHE_SECONDS = 1.0
_RECENT: TTLCache[tuple[str, str], Principal] = TTLCache(maxsize=10_000, ttl=AUTH_CACHE_SECONDS)
_RECENT_LOCK = threading.Lock()


def recently_authenticated(db: Database, token: str) -> Principal | None:
    """The principal of a token that authenticated within the last AUTH_CACHE_SECONDS (no database read)."""
    with _RECENT_LOCK:
        return _RECENT.get((db.url, hash_token(token)))


def authenticate(db: Database, token: str) -> Principal | None:
    """The principal a token belongs to, or None (unknown, revoked)."""
    if not token.startswith((API_KEY_PREFIX, SESSION_PREFIX)) or len(token) > 200:
        return None
    token_hash = hash_token(token)
    with db.read() as conn:
        row = conn.execute(
            select(users.c.id, users.c.kind, users.c.name)
            .join(credentials, credentials.c.user_id == users.c.id)
            .where(
                credentials.c.token_hash == token_hash,
                credentials.c.revoked_at.is_(None),
                users.c.revoked_at.is_(None),
            )
        ).first()
    if row is None:
        return None
    principal = Principal(user_id=row.id, kind=row.kind, name=row.name)
    with _RECENT_LOCK:
        _RECENT[(db.url, token_hash)] = principal
    return principal


def list_users(db: Database) -> list[dict[str, Any]]:
    with db.read() as conn:
        rows = conn.execute(
            select(users, credentials.c.prefix)
            .join(credentials, credentials.c.user_id == users.c.id)
            .where(users.c.kind == "user", credentials.c.kind == "api_key")  # not its web sign-ins
            .order_by(users.c.created_at)
        ).all()
    return [
        {
            "id": r.id,
            "name": r.name,
            "key_prefix": r.prefix,
            "monthly_budget": money_text(r.monthly_budget) if r.monthly_budget is not None else None,
            "created_at": iso(r.created_at),
            "revoked_at": iso(r.revoked_at),
        }
        for r in rows
    ]


def revoke_user(db: Database, name_or_id: str) -> dict[str, Any]:
    now = utcnow()
    with db.write() as conn:
        row = conn.execute(
            select(users).where(users.c.kind == "user", (users.c.id == name_or_id) | (users.c.name == name_or_id))
        ).all()
        if len(row) != 1:
            raise NotFound(f"user {name_or_id} not found" if not row else f"several users are named {name_or_id}; use the id")
        user_id = row[0].id
        conn.execute(update(users).where(users.c.id == user_id).values(revoked_at=now))
        conn.execute(update(credentials).where(credentials.c.user_id == user_id).values(revoked_at=now))
    with _RECENT_LOCK:
        _RECENT.clear()
    return {"id": user_id, "name": row[0].name, "revoked_at": iso(now)}


def sign_in_with_key(db: Database, api_key: str) -> tuple[Principal, str] | None:
    """A web sign-in: for a valid API key of a user, a new session token of that same user (the key itself
    never goes into a cookie); None for an unknown or revoked key, or a token that is not an API key."""
    if not api_key.startswith(API_KEY_PREFIX):
        return None
    principal = authenticate(db, api_key)
    if principal is None or principal.kind != "user":
        return None
    token = _new_token(SESSION_PREFIX)
    with db.write() as conn:
        conn.execute(
            _INSERT_CREDENTIAL,
            {
                "id": str(uuid.uuid4()),
                "user_id": principal.user_id,
                "kind": "session",
                "token_hash": hash_token(token),
                "prefix": token[: len(SESSION_PREFIX) + 6],
                "created_at": utcnow(),
                "revoked_at": None,
            },
        )
    return principal, token


def revoke_session(db: Database, token: str) -> None:
    """Sign out: this session token stops working (the user's key and other sign-ins keep theirs)."""
    with db.write() as conn:
        conn.execute(
            update(credentials)
            .where(credentials.c.token_hash == hash_token(token), credentials.c.kind == "session")
            .values(revoked_at=utcnow())
        )
    with _RECENT_LOCK:
        _RECENT.pop((db.url, hash_token(token)), None)
