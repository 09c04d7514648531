"""Rate limits kept in the store: a token bucket per key, spent inside the caller's transaction.

Two limits, each asked for in one call per transaction: new anonymous
sessions per client address (``admit_sessions``) and submissions per owner
(``admit_submissions``). Each answers, per request, None (admitted: its
token is spent) or the refusal to give that request.

Counted in the database, so a limit holds across API processes: SQLite holds
the write lock, and on PostgreSQL the upsert below locks each bucket's row,
taken in key order within a call. A transaction that needs both asks for
sessions first ("session:…" rows before "submit:…" ones), so two transactions
never wait on each other in a circle.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, bindparam, update

from prospectpro.domain.rate import Bucket, Rate
from prospectpro.errors import RateLimited
from prospectpro.store.schema import rate_limits
from prospectpro.store.upsert import lock_or_insert_statement

_UPDATE_BUCKET = (
    update(rate_limits)
    .where(rate_limits.c.key == bindparam("b_key"))
    .values(tokens=bindparam("b_tokens"), updated_at=bindparam("b_at"))
)


def admit_sessions(conn: Connection, limits: Sequence[tuple[str, int]], now: datetime) -> list[RateLimited | None]:
    """One new anonymous session per (client address, sessions per minute): None where admitted, else the refusal."""
    waits = _spend(conn, [(f"session:{address}", Rate(per_minute)) for address, per_minute in limits], now)
    return [
        RateLimited("too many new sessions from this address; try again later", retry_after=wait) if wait else None
        for wait in waits
    ]


def admit_submissions(conn: Connection, rates: Sequence[tuple[str, int]], now: datetime) -> list[RateLimited | None]:
    """One new submission per (owner, campaigns per minute): None where admitted, else the refusal."""
    waits = _spend(conn, [(f"submit:{owner}", Rate(per_minute)) for owner, per_minute in rates], now)
    return [
        RateLimited(f"at most {per_minute} campaigns per minute; try again in {wait} s", retry_after=wait)
        if wait
        else None
        for (_, per_minute), wait in zip(rates, waits, strict=True)
    ]


def admit_call(conn: Connection, key: str, rate: Rate, now: datetime) -> float:
    """One token of an installation-wide provider limit ("provider:<name>"): 0 when spent, else seconds to wait.

    The gate's callers wait and ask again; they are not refused.
    """
    lock = lock_or_insert_statement(conn.dialect.name, rate_limits, ("key",), ("tokens", "updated_at"))
    row = conn.execute(lock, {"key": key, "tokens": rate.capacity, "updated_at": now}).one()
    bucket, wait = rate.take_or_wait(Bucket(tokens=row.tokens, updated_at=row.updated_at), now)
    if not wait:
        conn.execute(_UPDATE_BUCKET, {"b_key": key, "b_tokens": bucket.tokens, "b_at": bucket.updated_at})
    return wait


def _spend(conn: Connection, wanted: Sequence[tuple[str, Rate]], now: datetime) -> list[int]:
    """One token per (key, rate), in order: 0 where it was spent, else the seconds to wait.

    A key's first rate is its bucket's capacity for this call.
    """
    if not wanted:
        return []
    rates = dict(sorted(reversed(wanted), key=lambda pair: pair[0]))  # one rate per key: the first one given
    # A bucket row, created full if missing, and locked: one (cached) statement.
    lock = lock_or_insert_statement(conn.dialect.name, rate_limits, ("key",), ("tokens", "updated_at"))
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

