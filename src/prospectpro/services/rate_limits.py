"""Rate limits kept in the store: a token bucket per key, spent inside the caller's transaction.

Counted in the database, so a limit holds across API processes: SQLite holds
the write lock, and on PostgreSQL the upsert below locks each bucket's row
(taken in key order within a call, and "session:…" keys before "submit:…"
ones, so two transactions never wait on each other in a circle).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, update
from sqlalchemy.dialects import postgresql, sqlite

from prospectpro.domain.rate import Bucket, Rate
from prospectpro.errors import RateLimited
from prospectpro.store.schema import rate_limits

_UPDATE_BUCKET = (
    update(rate_limits)
    .where(rate_limits.c.key == bindparam("b_key"))
    .values(tokens=bindparam("b_tokens"), updated_at=bindparam("b_at"))
)


def new_session_bucket(limit: tuple[str, int]) -> tuple[str, Rate]:
    """The bucket a new anonymous session spends from: (client address, sessions per minute)."""
    address, per_minute = limit
    return f"session:{address}", Rate(per_minute)


def too_many_sessions(wait: int) -> RateLimited:
    return RateLimited("too many new sessions from this address; try again later", retry_after=wait)


def spend(conn: Connection, wanted: Sequence[tuple[str, Rate]], now: datetime) -> list[int]:
    """One token per (key, rate), in order: 0 where it was spent, else the seconds to wait.

    A key's first rate is its bucket's capacity for this call.
    """
    if not wanted:
        return []
    rates = dict(sorted(reversed(wanted), key=lambda pair: pair[0]))  # one rate per key: the first one given
    lock = _lock_bucket(conn.dialect.name)
    buckets: dict[str, Bucket] = {}
    for key, rate in rates.items():
        row = conn.execute(lock, {"key": key, "tokens": float(rate.per_minute), "updated_at": now}).one()
        buckets[key] = Bucket(tokens=row.tokens, updated_at=row.updated_at)
    waits = []
    for key, rate in wanted:
        buckets[key], wait = rate.take(buckets[key], now)
        waits.append(wait)
    conn.execute(
        _UPDATE_BUCKET, [{"b_key": key, "b_tokens": b.tokens, "b_at": b.updated_at} for key, b in buckets.items()]
    )
    return waits


@functools.cache
def _lock_bucket(dialect: str) -> Any:
    """A bucket row, created full if missing, and locked: one statement (an upsert that changes nothing)."""
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(rate_limits)
    return insert.on_conflict_do_update(
        index_elements=[rate_limits.c.key], set_={"key": insert.excluded.key}
    ).returning(rate_limits.c.tokens, rate_limits.c.updated_at)
