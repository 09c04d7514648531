"""What the operating edges read about the queue: /healthz, /metrics, ``doctor`` and the event hub.

The queue's own reads and writes (claim, change, cancel, a job and its
events) are in ``jobs/queue.py``; this module holds the read-only
questions asked across every tenant, so each query on ``discovery_jobs``
and ``api_calls`` outside the queue is in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection, func, select, text

from prospectpro.domain.clock import utcnow
from prospectpro.domain.status import JobStatus
from prospectpro.store.db import Database
from prospectpro.store.schema import api_calls, discovery_jobs

DURATIONS_SAMPLE = 10_000  # the latest completed jobs the duration histogram covers
_IN_CHUNK = 500  # ids per IN (…): well under SQLite's bound-parameter limit


@dataclass(frozen=True)
class ProviderSpend:
    provider: str
    calls: int
    cost: Decimal


@dataclass(frozen=True)
class QueueStats:
    """The numbers /metrics reports, read in one transaction."""

    by_status: dict[str, int]  # every status present; a missing one counts 0
    depth: int
    durations: list[float]  # seconds from start to completion, latest completed jobs, ascending
    spend: list[ProviderSpend]


def ping(db: Database) -> None:
    """Raises when the database cannot answer a query."""
    with db.read() as conn:
        conn.execute(text("SELECT 1"))


def queue_depth(db: Database, now: datetime | None = None) -> int:
    """Jobs waiting for a worker now (pending and due)."""
    with db.read() as conn:
        return _depth(conn, now or utcnow())


def _depth(conn: Connection, now: datetime) -> int:
    return conn.execute(
        select(func.count())
        .select_from(discovery_jobs)
        .where(discovery_jobs.c.status == JobStatus.pending.value, discovery_jobs.c.run_after <= now)
    ).scalar_one()


def queue_stats(db: Database, now: datetime | None = None) -> QueueStats:
    with db.read() as conn:
        by_status = {
            status: int(n)
            for status, n in conn.execute(
                select(discovery_jobs.c.status, func.count()).group_by(discovery_jobs.c.status)
            ).all()
        }
        finished = conn.execute(
            select(discovery_jobs.c.started_at, discovery_jobs.c.completed_at)
            .where(discovery_jobs.c.status == JobStatus.completed.value, discovery_jobs.c.started_at.is_not(None))
            .order_by(discovery_jobs.c.completed_at.desc())
            .limit(DURATIONS_SAMPLE)
        ).all()
        spend = [
            ProviderSpend(provider, int(n), Decimal(str(cost)))
            for provider, n, cost in conn.execute(
                select(api_calls.c.provider, func.count(), func.coalesce(func.sum(api_calls.c.cost), 0)).group_by(
                    api_calls.c.provider
                )
            ).all()
        ]
        depth = _depth(conn, now or utcnow())
    durations = sorted((row.completed_at - row.started_at).total_seconds() for row in finished)
    return QueueStats(by_status=by_status, depth=depth, durations=durations, spend=spend)


def event_seqs(db: Database, job_ids: Sequence[str]) -> dict[str, int]:
    """Each existing job's last event sequence number (what the event hub polls for)."""
    found: dict[str, int] = {}
    with db.read() as conn:
        for i in range(0, len(job_ids), _IN_CHUNK):
            rows = conn.execute(
                select(discovery_jobs.c.id, discovery_jobs.c.event_seq).where(
                    discovery_jobs.c.id.in_(job_ids[i : i + _IN_CHUNK])
                )
            ).all()
            found.update({r.id: r.event_seq for r in rows})
    return found
