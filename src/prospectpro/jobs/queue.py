"""The durable queue: enqueue, claim, lease, retry, cancel — and the one
function through which every change of a job goes (``apply_change``), so
that each change is one row update plus one event in one transaction."""

from __future__ import annotations

import random
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, insert, or_, select, update

from prospectpro.domain.clock import utcnow
from prospectpro.domain.status import JobStatus
from prospectpro.errors import NotFound
from prospectpro.jobs.kinds import QUEUED, status_hook
from prospectpro.jobs.model import Change, Job, JobEvent, JobFinished, Lease, LeaseLost
from prospectpro.store.db import Database, mark_changed
from prospectpro.store.schema import discovery_jobs, job_events

_INSERT_JOB = insert(discovery_jobs)
_INSERT_EVENT = insert(job_events)


def _merge(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(old)
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def lock_job(conn: Connection, job_id: str, lease: Lease | None = None) -> Job:
    """Read a job for change, holding its row lock until the transaction ends.

    With a lease, this is the fence: a worker whose lease was taken over
    (or whose job ended) gets LeaseLost and its transaction writes nothing.
    """
    query = select(discovery_jobs).where(discovery_jobs.c.id == job_id)
    if conn.dialect.name != "sqlite":  # SQLite: BEGIN IMMEDIATE already serializes writers
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"job {job_id} not found")
    job = Job.from_row(row)
    if lease is not None and (
        job.status != JobStatus.processing or job.lease_owner != lease.worker_id or job.lease_token != lease.token
    ):
        raise LeaseLost(f"job {job_id}: lease {lease.token} held by {lease.worker_id} is no longer valid")
    return job


def apply_change(
    conn: Connection,
    job: Job,
    change: Change,
    *,
    now: datetime | None = None,
    columns: Mapping[str, Any] | None = None,
) -> tuple[Job, JobEvent]:
    """Update the job row and append its next event; the caller holds the row (``lock_job``).

    When the status changes, the job's kind's hook runs here, in the same
    transaction: what it writes commits with the change, or neither does.
    """
    if job.status.terminal:
        raise JobFinished(f"job {job.id} is {job.status.value}")
    now = now or utcnow()
    values: dict[str, Any] = {"event_seq": job.event_seq + 1, "updated_at": now, **(columns or {})}
    if change.status is not None:
        values["status"] = change.status.value
        if change.status.terminal:
            values["completed_at"] = now
            values["lease_owner"] = None
            values["lease_expires_at"] = None
    if change.stage is not None:
        values["current_stage"] = str(change.stage)
    if change.progress is not None:
        values["progress"] = max(job.progress, min(100, change.progress))
    if change.metrics:
        values["metrics"] = _merge(job.metrics, change.metrics)
    if change.checkpoint:
        values["checkpoint"] = _merge(job.checkpoint, change.checkpoint)
    if change.error is not None:
        values["error"] = change.error
    result = conn.execute(
        update(discovery_jobs)
        .where(discovery_jobs.c.id == job.id, discovery_jobs.c.event_seq == job.event_seq)
        .values(**values)
        .returning(*discovery_jobs.c)
    ).first()
    if result is None:  # cannot happen while the row is held; refuse rather than fork the log
        raise LeaseLost(f"job {job.id} changed underneath this transaction")
    updated = Job.from_row(result)
    if change.status is not None and change.status != job.status:
        hook = status_hook(updated.kind)
        if hook is not None:
            hook(conn, updated, now)
    data = {**updated.snapshot(), "message": _message(change, updated), **change.data}
    conn.execute(
        _INSERT_EVENT, {"job_id": job.id, "seq": updated.event_seq, "kind": change.kind, "data": data, "created_at": now}
    )
    mark_changed(conn, job.id)
    return updated, JobEvent(job_id=job.id, seq=updated.event_seq, kind=change.kind, data=data, created_at=now)


def _message(change: Change, job: Job) -> str:
    if change.status == JobStatus.failed:
        return f"Failed: {job.error}"
    if change.status == JobStatus.cancelled:
        return "Cancelled"
    if change.status == JobStatus.completed:
        return "Completed"
    return job.running_label


@dataclass(frozen=True)
class NewJob:
    """What a caller decides about a job to enqueue; the queue fills in the rest."""

    owner_id: str
    config: dict[str, Any]
    max_attempts: int
    kind: str = "campaign"
    campaign_id: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None


def insert_jobs(conn: Connection, new_jobs: Sequence[NewJob], now: datetime | None = None) -> list[Job]:
    """Insert pending jobs and each one's first event (seq 1): two statements, however many jobs."""
    if not new_jobs:
        return []
    now = now or utcnow()
    jobs = [
        Job(
            id=str(uuid.uuid4()),
            kind=new.kind,
            campaign_id=new.campaign_id,
            owner_id=new.owner_id,
            status=JobStatus.pending,
            progress=0,
            current_stage=QUEUED,
            config=new.config,
            metrics={},
            checkpoint={},
            error=None,
            attempts=0,
            max_attempts=new.max_attempts,
            run_after=now,
            lease_owner=None,
            lease_token=0,
            lease_expires_at=None,
            cancel_requested=False,
            idempotency_key=new.idempotency_key,
            request_hash=new.request_hash,
            event_seq=1,
            created_at=now,
            started_at=None,
            completed_at=None,
            updated_at=now,
        )
        for new in new_jobs
    ]
    # Statements plus parameter lists (not .values(...)): compiled once and
    # cached, and sent as one executemany each.
    conn.execute(_INSERT_JOB, [job.to_row() for job in jobs])
    conn.execute(
        _INSERT_EVENT,
        [
            {"job_id": job.id, "seq": 1, "kind": "created", "data": _created(job), "created_at": now}
            for job in jobs
        ],
    )
    for job in jobs:
        mark_changed(conn, job.id)
    return jobs


def insert_job(conn: Connection, new_job: NewJob, now: datetime | None = None) -> Job:
    return insert_jobs(conn, [new_job], now)[0]


def _created(job: Job) -> dict[str, Any]:
    return {**job.snapshot(), "message": "Queued"}


def _claimable(now: datetime, kinds: Collection[str] | None) -> Any:
    due = or_(
        and_(discovery_jobs.c.status == JobStatus.pending.value, discovery_jobs.c.run_after <= now),
        and_(discovery_jobs.c.status == JobStatus.processing.value, discovery_jobs.c.lease_expires_at < now),
    )
    # A worker takes only the kinds it has handlers for: an older worker leaves a newer kind to the others.
    return due if kinds is None else and_(due, discovery_jobs.c.kind.in_(sorted(kinds)))


def has_claimable(db: Database, now: datetime | None = None, *, kinds: Collection[str] | None = None) -> bool:
    """Cheap read first, so idle workers do not queue on SQLite's write lock."""
    with db.read() as conn:
        query = select(discovery_jobs.c.id).where(_claimable(now or utcnow(), kinds)).limit(1)
        return conn.execute(query).first() is not None


def claim(
    db: Database,
    worker_id: str,
    lease_seconds: float,
    *,
    kinds: Collection[str] | None = None,
    now: datetime | None = None,
) -> tuple[Lease, Job] | None:
    """Take the oldest runnable job (of ``kinds``, when given): pending and due, or processing with an expired lease.

    ``now``: the time to judge by, for tests; the clock's by default.
    """
    while True:
        at = now or utcnow()
        with db.write() as conn:
            query = (
                select(discovery_jobs.c.id)
                .where(_claimable(at, kinds))
                .order_by(discovery_jobs.c.run_after, discovery_jobs.c.created_at)
                .limit(1)
            )
            if not db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            job_id = conn.execute(query).scalar()
            if job_id is None:
                return None
            job = lock_job(conn, job_id)
            taken_over = job.status == JobStatus.processing
            if job.attempts >= job.max_attempts:
                # Its worker died during the last attempt (a worker that is alive
                # charges no attempt for a database outage, so never lands here).
                # A cancel request wins over the failure. With attempts left, a job
                # whose cancel was asked is claimed as usual: its handler ends it at
                # its first checkpoint, keeping what it had found.
                apply_change(conn, job, _out_of_attempts(job), now=at)
                continue  # look for another job in a new transaction
            token = job.lease_token + 1
            job, _ = apply_change(
                conn,
                job,
                Change(
                    kind="taken_over" if taken_over else "claimed",
                    status=JobStatus.processing,
                    data={"attempt": job.attempts + 1, "worker": worker_id},
                ),
                now=at,
                columns={
                    "lease_owner": worker_id,
                    "lease_token": token,
                    "lease_expires_at": at + timedelta(seconds=lease_seconds),
                    "attempts": job.attempts + 1,
                    "started_at": job.started_at or at,
                },
            )
            return Lease(job_id=job.id, worker_id=worker_id, token=token), job


def _out_of_attempts(job: Job) -> Change:
    if job.cancel_requested:
        return Change(kind="cancelled", status=JobStatus.cancelled, data={"lease_expired": True})
    return Change(
        kind="failed",
        status=JobStatus.failed,
        error=job.error or f"the worker running attempt {job.attempts} of {job.max_attempts} stopped responding",
    )


def renew_lease(db: Database, lease: Lease, lease_seconds: float, *, now: datetime | None = None) -> bool | None:
    """Extend the lease. Returns the job's cancel flag, or None when the lease is lost.

    A renewal is bookkeeping, not a change of the job a client sees: it
    writes no event.
    """
    now = now or utcnow()
    with db.write() as conn:
        row = conn.execute(
            update(discovery_jobs)
            .where(
                discovery_jobs.c.id == lease.job_id,
                discovery_jobs.c.lease_owner == lease.worker_id,
                discovery_jobs.c.lease_token == lease.token,
                discovery_jobs.c.status == JobStatus.processing.value,
            )
            .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
            .returning(discovery_jobs.c.cancel_requested)
        ).first()
    return None if row is None else bool(row[0])


def release(db: Database, lease: Lease, *, now: datetime | None = None) -> None:
    """Give a job back (worker shutting down) without counting the attempt."""
    with db.write() as conn:
        job = lock_job(conn, lease.job_id, lease)
        now = now or utcnow()  # once the row is held: a wait for the lock does not shorten anything
        apply_change(
            conn,
            job,
            Change(kind="released", status=JobStatus.pending, data={"worker": lease.worker_id}),
            now=now,
            columns={
                "lease_owner": None,
                "lease_expires_at": None,
                "attempts": max(0, job.attempts - 1),
                "run_after": now,
            },
        )


def retry_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter on the upper half."""
    delay = min(cap, base * (2.0 ** max(0, attempt - 1)))
    return delay / 2 + random.uniform(0, delay / 2)


def record_failure(
    db: Database, lease: Lease, error: str, *, base: float, cap: float, now: datetime | None = None
) -> Job:
    """An attempt raised: retry later with backoff, or fail for good after the last attempt.

    A cancel request wins over both: the owner asked for the job to end, so it ends cancelled.
    """
    with db.write() as conn:
        job = lock_job(conn, lease.job_id, lease)
        now = now or utcnow()  # once the row is held: a wait for the lock does not shorten the backoff
        if job.cancel_requested:
            job, _ = apply_change(
                conn, job, Change(kind="cancelled", status=JobStatus.cancelled, data={"attempt_error": error}), now=now
            )
        elif job.attempts < job.max_attempts:
            delay = retry_delay(job.attempts, base, cap)
            job, _ = apply_change(
                conn,
                job,
                Change(
                    kind="retry_scheduled",
                    status=JobStatus.pending,
                    error=error,
                    data={"attempt": job.attempts, "retry_in_seconds": round(delay, 3)},
                ),
                now=now,
                columns={"lease_owner": None, "lease_expires_at": None, "run_after": now + timedelta(seconds=delay)},
            )
        else:
            job, _ = apply_change(
                conn,
                job,
                Change(kind="failed", status=JobStatus.failed, error=f"{error} (after {job.attempts} attempts)"),
                now=now,
            )
        return job


def request_cancel(db: Database, job_id: str, owner_id: str, *, now: datetime | None = None) -> Job:
    """Cancel a job: at once when no worker holds it, else at the worker's next checkpoint.

    No worker holds a pending job, nor one whose worker died (its lease
    expired): those end at once rather than when some worker claims them.
    """
    now = now or utcnow()
    with db.write() as conn:
        job = lock_job(conn, job_id)
        if job.owner_id != owner_id:
            raise NotFound(f"job {job_id} not found")
        if job.status.terminal:
            return job
        orphaned = job.status == JobStatus.processing and (job.lease_expires_at is None or job.lease_expires_at < now)
        if job.status == JobStatus.pending or orphaned:
            change = Change(kind="cancelled", status=JobStatus.cancelled, data={"lease_expired": True} if orphaned else {})
            job, _ = apply_change(conn, job, change, now=now)
        elif not job.cancel_requested:
            job, _ = apply_change(conn, job, Change(kind="cancel_requested"), now=now, columns={"cancel_requested": True})
        return job


def cancel_is_requested(db: Database, job_id: str) -> bool:
    with db.read() as conn:
        return bool(
            conn.execute(select(discovery_jobs.c.cancel_requested).where(discovery_jobs.c.id == job_id)).scalar()
        )


def job_by_idempotency_key(conn: Connection, owner_id: str, key: str) -> Job | None:
    """The owner's job submitted with this Idempotency-Key, if any (inside the caller's transaction)."""
    row = conn.execute(
        select(discovery_jobs).where(discovery_jobs.c.owner_id == owner_id, discovery_jobs.c.idempotency_key == key)
    ).first()
    return None if row is None else Job.from_row(row)


def job_exists(db: Database, job_id: str) -> bool:
    with db.read() as conn:
        return conn.execute(select(discovery_jobs.c.id).where(discovery_jobs.c.id == job_id)).first() is not None


def get_job(db: Database, job_id: str, owner_id: str | None = None) -> Job:
    with db.read() as conn:
        row = conn.execute(select(discovery_jobs).where(discovery_jobs.c.id == job_id)).first()
    if row is None or (owner_id is not None and row.owner_id != owner_id):
        raise NotFound(f"job {job_id} not found")
    return Job.from_row(row)


def list_jobs(
    db: Database,
    owner_id: str,
    *,
    kind: str | None = "campaign",
    status: JobStatus | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Job], int]:
    """The owner's jobs of ``kind`` (every kind with None), newest first, and how many there are.

    Jobs the system runs for itself are owned by ``SYSTEM_USER_ID``, which no
    caller is: they never show here.
    """
    where = [discovery_jobs.c.owner_id == owner_id]
    if kind is not None:
        where.append(discovery_jobs.c.kind == kind)
    if status is not None:
        where.append(discovery_jobs.c.status == status.value)
    with db.read() as conn:
        rows = conn.execute(
            select(discovery_jobs)
            .where(*where)
            .order_by(discovery_jobs.c.created_at.desc(), discovery_jobs.c.id)
            .limit(limit)
            .offset(offset)
        ).all()
        total = conn.execute(select(func.count()).select_from(discovery_jobs).where(*where)).scalar_one()
    return [Job.from_row(r) for r in rows], total


def list_events(db: Database, job_id: str, *, after: int = 0, limit: int = 1000) -> list[JobEvent]:
    with db.read() as conn:
        rows = conn.execute(
            select(job_events)
            .where(job_events.c.job_id == job_id, job_events.c.seq > after)
            .order_by(job_events.c.seq)
            .limit(limit)
        ).all()
    return [JobEvent.from_row(r) for r in rows]


def find_job_id(db: Database, prefix: str, owner_id: str) -> str:
    """Full id from a unique prefix (at least 6 characters), for people typing ids."""
    prefix = prefix.strip().lower()
    if len(prefix) == 36:
        return prefix
    if len(prefix) < 6:
        raise NotFound(f"job {prefix} not found (give at least 6 characters of the id)")
    with db.read() as conn:
        ids = (
            conn.execute(
                select(discovery_jobs.c.id)
                .where(discovery_jobs.c.owner_id == owner_id, discovery_jobs.c.id.startswith(prefix, autoescape=True))
                .limit(2)
            )
            .scalars()
            .all()
        )
    if len(ids) != 1:
        raise NotFound(f"job {prefix} not found" if not ids else f"job id prefix {prefix} is ambiguous")
    return str(ids[0])
