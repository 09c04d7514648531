"""Who is calling: users with API keys, and anonymous sessions.

Tokens are 256-bit random strings shown once and stored only as SHA-256
hashes (a fast hash is enough for high-entropy secrets). A session is an
anonymous user with one session token; it sees only its own jobs.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from prospectpro.errors import InvalidInput, NotFound
from prospectpro.jobs.model import iso, utcnow
from prospectpro.store.db import Database
from prospectpro.store.schema import credentials, users

API_KEY_PREFIX = "ppk_"
SESSION_PREFIX = "pps_"


@dataclass(frozen=True)
class Principal:
    user_id: str
    kind: str  # local | user | anonymous
    name: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def _create(db: Database, *, name: str, kind: str, credential_kind: str, prefix: str) -> tuple[Principal, str]:
    token = _new_token(prefix)
    user_id = str(uuid.uuid4())
    now = utcnow()
    with db.write() as conn:
        conn.execute(users.insert().values(id=user_id, name=name, kind=kind, created_at=now))
        conn.execute(
            credentials.insert().values(
                id=str(uuid.uuid4()),
                user_id=user_id,
                kind=credential_kind,
                token_hash=hash_token(token),
                prefix=token[: len(prefix) + 6],
                created_at=now,
            )
        )
    return Principal(user_id=user_id, kind=kind, name=name), token


def create_user(db: Database, name: str) -> tuple[Principal, str]:
    """A named user and its first API key (returned once)."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("user name must be 1–200 characters")
    return _create(db, name=name, kind="user", credential_kind="api_key", prefix=API_KEY_PREFIX)


def create_session(db: Database, label: str | None = None) -> tuple[Principal, str]:
    """An anonymous session. ``label`` (e.g. the old client's sessionUserId) is a name, never an identity."""
    name = (label or "anonymous").strip()[:200] or "anonymous"
    return _create(db, name=name, kind="anonymous", credential_kind="session", prefix=SESSION_PREFIX)


def authenticate(db: Database, token: str) -> Principal | None:
    """The principal a token belongs to, or None (unknown, revoked)."""
    if not token.startswith((API_KEY_PREFIX, SESSION_PREFIX)) or len(token) > 200:
        return None
    with db.read() as conn:
        row = conn.execute(
            select(users.c.id, users.c.kind, users.c.name)
            .join(credentials, credentials.c.user_id == users.c.id)
            .where(
                credentials.c.token_hash == hash_token(token),
                credentials.c.revoked_at.is_(None),
                users.c.revoked_at.is_(None),
            )
        ).first()
    return None if row is None else Principal(user_id=row.id, kind=row.kind, name=row.name)


def list_users(db: Database) -> list[dict[str, Any]]:
    with db.read() as conn:
        rows = conn.execute(
            select(users, credentials.c.prefix)
            .join(credentials, credentials.c.user_id == users.c.id)
            .where(users.c.kind == "user")
            .order_by(users.c.created_at)
        ).all()
    return [
        {
            "id": r.id,
            "name": r.name,
            "key_prefix": r.prefix,
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
    return {"id": user_id, "name": row[0].name, "revoked_at": iso(now)}
