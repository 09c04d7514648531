"""Retention: what finished jobs leave behind is deleted once it is old enough (issue 13).

What goes, once older than ``Settings.prune_after_days``:

- the events and candidates of finished jobs (completed, failed, cancelled;
  aged by ``completed_at``). The job row stays (its status, metrics and error
  answer ``GET /jobs/{id}``), and a reader of its events gets 410 Gone
  (``Pruned``) instead of an empty log. Leads are never touched: they belong
  to the campaign, not to the job's working state;
- the stored answers of ledger rows no longer reusable (``reusable_until``
  passed that long ago): the body goes, the row stays, because the money it
  records still counts towards the month's and the job's spend;
- session credentials revoked that long ago (sign-outs).

Never a running job's rows: only terminal jobs qualify, and a terminal job
never runs again. The work is done in small batches, each its own short
transaction, so that neither writers nor readers wait behind it; and by one
process at a time — on PostgreSQL a session advisory lock held for the whole
run (a second pruner finds it taken and does nothing), on SQLite each batch
holds the write lock.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, exists, func, null, select, text, update

from prospectpro.domain.clock import utcnow
from prospectpro.domain.status import JobStatus
from prospectpro.errors import UserError
from prospectpro.jobs.model import Job
from prospectpro.store.db import Database
from prospectpro.store.schema import api_calls, credentials, discovery_jobs, job_candidates, job_events

log = logging.getLogger(__name__)

# One number for every process of every deployment on this database: pg_try_advisory_lock(key).
ADVISORY_KEY = zlib.crc32(b"prospectpro.prune")
TERMINAL = sorted(s.value for s in JobStatus if s.terminal)


class Pruned(UserError):
    """The events of a job finished long ago were deleted by retention."""

    code = "gone"
    http_status = 410
    exit_code = 3


@dataclass
class PruneReport:
    """How many rows went (or, with ``dry_run``, would go)."""

    dry_run: bool
    cutoff: datetime
    jobs: int = 0  # finished jobs whose events and candidates went
    events: int = 0
    candidates: int = 0
    ledger_answers: int = 0
    sessions: int = 0
    skipped: bool = False  # another process was pruning: this one did nothing
    batches: int = field(default=0, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "cutoff": self.cutoff.isoformat(),
            "jobs": self.jobs,
            "events": self.events,
            "candidates": self.candidates,
            "ledger_answers": self.ledger_answers,
            "sessions": self.sessions,
            "skipped": self.skipped,
        }


def _has_rows(job_id: Any) -> Any:
    return exists().where(job_events.c.job_id == job_id) | exists().where(job_candidates.c.job_id == job_id)


def _old_finished(cutoff: datetime) -> Any:
    c = discovery_jobs.c
    return and_(c.status.in_(TERMINAL), c.completed_at.is_not(None), c.completed_at < cutoff, _has_rows(c.id))


def _expired_answers(cutoff: datetime) -> Any:
    return and_(api_calls.c.reusable_until < cutoff, api_calls.c.response.is_not(None))


def _old_sign_outs(cutoff: datetime) -> Any:
    return and_(
        credentials.c.kind == "session", credentials.c.revoked_at.is_not(None), credentials.c.revoked_at < cutoff
    )


@contextmanager
def _one_pruner(db: Database) -> Iterator[bool]:
    """True while this process is the only pruner (PostgreSQL: the advisory lock); SQLite: always True."""
    if db.is_sqlite:  # every batch holds the write lock: two pruners take turns, batch by batch
        yield True
        return
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_KEY}).scalar())
        try:
            yield got
        finally:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_KEY})


def _count(conn: Connection, table: Any, where: Any) -> int:
    return int(conn.execute(select(func.count()).select_from(table).where(where)).scalar() or 0)


def _dry_run(db: Database, report: PruneReport) -> PruneReport:
    cutoff = report.cutoff
    with db.read() as conn:
        report.jobs = _count(conn, discovery_jobs, _old_finished(cutoff))
        old_jobs = select(discovery_jobs.c.id).where(_old_finished(cutoff))
        report.events = _count(conn, job_events, job_events.c.job_id.in_(old_jobs))
        report.candidates = _count(conn, job_candidates, job_candidates.c.job_id.in_(old_jobs))
        report.ledger_answers = _count(conn, api_calls, _expired_answers(cutoff))
        report.sessions = _count(conn, credentials, _old_sign_outs(cutoff))
    return report


def _prune_jobs_batch(db: Database, cutoff: datetime, batch: int, report: PruneReport) -> bool:
    """One batch of finished jobs' events and candidates; False when there were none left."""
    with db.write() as conn:
        query = select(discovery_jobs.c.id).where(_old_finished(cutoff)).limit(batch)
        if not db.is_sqlite:  # a job another transaction holds is left for the next run
            query = query.with_for_update(skip_locked=True)
        ids = list(conn.execute(query).scalars())
        if not ids:
            return False
        report.events += conn.execute(delete(job_events).where(job_events.c.job_id.in_(ids))).rowcount
        report.candidates += conn.execute(delete(job_candidates).where(job_candidates.c.job_id.in_(ids))).rowcount
        report.jobs += len(ids)
    return True


def _batched(db: Database, table: Any, key: Any, where: Any, values: dict[str, Any] | None, batch: int) -> int:
    """Delete (``values`` None) or update the rows matching ``where``, ``batch`` at a time; how many."""
    done = 0
    while True:
        with db.write() as conn:
            ids = list(conn.execute(select(key).where(where).limit(batch)).scalars())
            if not ids:
                return done
            statement = delete(table) if values is None else update(table).values(**values)
            done += conn.execute(statement.where(key.in_(ids))).rowcount


def prune(
    db: Database,
    *,
    older_than_days: float,
    batch_size: int = 500,
    dry_run: bool = False,
    now: datetime | None = None,
) -> PruneReport:
    """Delete what retention allows (see the module's doc); with ``dry_run``, only count it."""
    if older_than_days <= 0:
        raise ValueError("older_than_days must be positive")
    cutoff = (now or utcnow()) - timedelta(days=older_than_days)
    report = PruneReport(dry_run=dry_run, cutoff=cutoff)
    if dry_run:
        return _dry_run(db, report)
    with _one_pruner(db) as alone:
        if not alone:
            report.skipped = True
            log.info("prune: another process is pruning; nothing done here")
            return report
        while _prune_jobs_batch(db, cutoff, batch_size, report):
            report.batches += 1
        report.ledger_answers = _batched(
            db, api_calls, api_calls.c.id, _expired_answers(cutoff), {"response": null()}, batch_size
        )
        report.sessions = _batched(db, credentials, credentials.c.id, _old_sign_outs(cutoff), None, batch_size)
    log.info("prune: %s", report.as_dict())
    return report


def check_events_readable(db: Database, job: Job, after: int) -> None:
    """Raise ``Pruned`` when ``job``'s events after ``after`` were deleted by retention.

    Only a finished job can have been pruned, and a job's log always starts
    with its ``created`` event: a finished job whose log has nothing where
    events are due has been pruned. One indexed probe, only for finished jobs.
    """
    if not job.status.terminal or after >= job.event_seq:
        return
    with db.read() as conn:
        found = conn.execute(
            select(job_events.c.seq).where(job_events.c.job_id == job.id, job_events.c.seq > after).limit(1)
        ).first()
    if found is None:
        finished = f" (it finished {job.completed_at:%Y-%m-%d})" if job.completed_at else ""
        raise Pruned(f"the events of job {job.id} were deleted by retention{finished}")
