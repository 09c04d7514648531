"""The durable queue: enqueue, claim, lease, retry, cancel — and the one
function through which every change of a job goes (``apply_change``), so
that each change is one row update plus one event in one transaction."""

from __future__ import annotations

import dataclasses
import functools
import random
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BindParameter, Connection, and_, bindparam, func, insert, or_, select, union_all, update

from prospectpro.domain.clock import utcnow
from prospectpro.domain.status import JobStatus
from prospectpro.errors import NotFound
from prospectpro.jobs.kinds import QUEUED, status_hook
from prospectpro.jobs.model import Change, Job, JobEvent, JobFinished, Lease, LeaseLost
from prospectpro.store.db import Database, mark_changed
from prospectpro.store.schema import discovery_jobs, job_events

_INSERT_JOB = insert(discovery_jobs)
_INSERT_EVENT = insert(job_events)

# The statements of the claim and change paths are built once, with bound parameters,
# and reused: building one per call (coercing its 25 RETURNING columns, generating its
# cache key) cost more Python than the database took to run it.
_C = discovery_jobs.c
_CLAIM_IDS: BindParameter[Any] = bindparam("claim_ids", expanding=True)
_LOCK = {
    False: select(discovery_jobs).where(_C.id == bindparam("job_id")),
    True: select(discovery_jobs).where(_C.id == bindparam("job_id")).with_for_update(),
}


@functools.cache
def _change_statement(columns: tuple[str, ...], fenced: bool) -> Any:
    """UPDATE of ``columns`` for one job, judged against the event sequence read (and, ``fenced``, the lease)."""
    where = [_C.id == bindparam("w_id"), _C.event_seq == bindparam("w_seq")]
    if fenced:
        where += [
            _C.lease_owner == bindparam("w_owner"),
            _C.lease_token == bindparam("w_token"),
            _C.status == JobStatus.processing.value,
        ]
    return (
        update(discovery_jobs)
        .where(*where)
        .values({name: bindparam(f"v_{name}") for name in columns})
        .returning(*discovery_jobs.c)
    )


def _run_change(conn: Connection, job_id: str, seq: int, values: Mapping[str, Any], lease: Lease | None) -> Any:
    params = {"w_id": job_id, "w_seq": seq, **{f"v_{k}": v for k, v in values.items()}}
    if lease is not None:
        params.update(w_owner=lease.worker_id, w_token=lease.token)
    return conn.execute(_change_statement(tuple(values), lease is not None), params).first()


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
    # SQLite: BEGIN IMMEDIATE already serializes writers
    row = conn.execute(_LOCK[conn.dialect.name != "sqlite"], {"job_id": job_id}).first()
    if row is None:
        raise NotFound(f"job {job_id} not found")
    job = Job.from_row(row)
    if lease is not None and (
        job.status != JobStatus.processing or job.lease_owner != lease.worker_id or job.lease_token != lease.token
    ):
        raise LeaseLost(f"job {job_id}: lease {lease.token} held by {lease.worker_id} is no longer valid")
    return job


def _change_values(job: Job, change: Change, now: datetime, columns: Mapping[str, Any] | None) -> dict[str, Any]:
    """The row's new values: ``change`` applied to ``job`` as it was read."""
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
    return values


def _changed(conn: Connection, before: Job, updated: Job, change: Change, now: datetime) -> JobEvent:
    """What follows the row update in the same transaction: the kind's hook (on a status change), the event."""
    if change.status is not None and change.status != before.status:
        hook = status_hook(updated.kind)
        if hook is not None:
            hook(conn, updated, now)
    data = {**updated.snapshot(), "message": _message(change, updated), **change.data}
    conn.execute(
        _INSERT_EVENT,
        {"job_id": updated.id, "seq": updated.event_seq, "kind": change.kind, "data": data, "created_at": now},
    )
    mark_changed(conn, updated.id)
    return JobEvent(job_id=updated.id, seq=updated.event_seq, kind=change.kind, data=data, created_at=now)


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
    result = _run_change(conn, job.id, job.event_seq, _change_values(job, change, now, columns), None)
    if result is None:  # cannot happen while the row is held; refuse rather than fork the log
        raise LeaseLost(f"job {job.id} changed underneath this transaction")
    updated = Job.from_row(result)
    return updated, _changed(conn, job, updated, change, now)


def apply_fenced_change(
    conn: Connection, known: Job, lease: Lease, change: Change, *, now: datetime | None = None
) -> tuple[Job, JobEvent] | None:
    """``apply_change`` without reading the row first, when the row is still ``known`` (the lease holder's last copy).

    One UPDATE that is also the fence: it matches only while the lease is
    this one's and the row's event sequence is the one ``known`` has; and
    since every change of a job bumps its sequence (a lease renewal changes
    only the expiry, which no change reads), a match means the new values,
    computed from ``known``, are what ``lock_job`` + ``apply_change`` would
    have written. None when it did not match (someone else wrote, e.g. a
    cancel request, or the lease is gone): the caller locks and reads the
    row, and decides from what it finds.
    """
    if known.status.terminal:
        raise JobFinished(f"job {known.id} is {known.status.value}")
    now = now or utcnow()
    result = _run_change(conn, known.id, known.event_seq, _change_values(known, change, now, None), lease)
    if result is None:
        return None
    updated = Job.from_row(result)
    return updated, _changed(conn, known, updated, change, now)


def fenced_change(db: Database, known: Job, lease: Lease, change: Change) -> Job | None:
    """``change`` written by the lease holder without locking the row first, when it needs nothing else in its transaction.

    None when the row moved on since ``known`` (or the lease is gone), or when the
    change must run the kind's status hook: then the caller takes the locking path
    (``lock_job`` + ``apply_change``), which decides from the row as it finds it.

    On PostgreSQL it is one statement in autocommit (the update and the event
    insert as one data-modifying WITH): one round trip and its commit, instead of
    BEGIN, UPDATE, INSERT, COMMIT. The event is computed beforehand from
    ``known``: when the update matches, the row is ``known`` with these values.
    """
    if known.status.terminal:
        raise JobFinished(f"job {known.id} is {known.status.value}")
    if change.status is not None and change.status != known.status and status_hook(known.kind) is not None:
        return None  # the hook writes in the change's transaction: the ordinary path
    if db.is_sqlite:  # round trips are free there; the transaction's cost is the write lock
        with db.write() as conn:
            done = apply_fenced_change(conn, known, lease, change)
        return None if done is None else done[0]
    now = utcnow()
    values = _change_values(known, change, now, None)
    expected = _expected(known, values)
    data = {**expected.snapshot(), "message": _message(change, expected), **change.data}
    params = {
        "w_id": known.id,
        "w_seq": known.event_seq,
        "w_owner": lease.worker_id,
        "w_token": lease.token,
        **{f"v_{k}": v for k, v in values.items()},
        "e_kind": change.kind,
        "e_data": data,
        "e_at": now,
    }
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        row = conn.execute(_one_statement_change(tuple(values)), params).first()
    if row is None:
        return None
    db.notifier.publish(known.id)
    # The row is what was expected (only a lease renewal may have moved its expiry since
    # ``known``, and nothing reads that from a run's copy): no need to send it back.
    return expected


def _expected(known: Job, values: Mapping[str, Any]) -> Job:
    fields = {k: v for k, v in values.items() if k != "status"}
    if "status" in values:
        fields["status"] = JobStatus(values["status"])
    return dataclasses.replace(known, **fields)


@functools.cache
def _one_statement_change(columns: tuple[str, ...]) -> Any:
    """PostgreSQL: the fenced UPDATE and its event's INSERT in one statement, returning the updated row."""
    updated = _change_statement(columns, True).cte("updated")
    event = (
        insert(job_events)
        .from_select(
            ["job_id", "seq", "kind", "data", "created_at"],
            select(
                updated.c.id,
                updated.c.event_seq,
                bindparam("e_kind", type_=job_events.c.kind.type),
                bindparam("e_data", type_=job_events.c.data.type),
                bindparam("e_at", type_=job_events.c.created_at.type),
            ),
        )
        .cte("event")
    )
    return select(updated.c.id).add_cte(event)


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


def _claimable_parts(now: datetime, kinds: Collection[str] | None) -> tuple[Any, Any]:
    """``_claimable`` as its two halves: processing with an expired lease; pending and due."""
    c = discovery_jobs.c
    parts = (
        and_(c.status == JobStatus.processing.value, c.lease_expires_at < now),
        and_(c.status == JobStatus.pending.value, c.run_after <= now),
    )
    return parts if kinds is None else (and_(parts[0], c.kind.in_(sorted(kinds))), and_(parts[1], c.kind.in_(sorted(kinds))))


@functools.cache
def _claim_probe(kinds: frozenset[str] | None, skip_locked: bool) -> Any:
    """The rows a claim takes, with ``now`` and ``limit`` bound at each call.

    Two arms, each an ordered scan of the (status, run_after) index that stops
    at the limit: jobs whose worker died first (they have waited longest), then
    pending ones that are due; the second runs only if the first found too few.
    One WHERE with an OR of both cannot use the index for its order: it sorted
    the whole table on every claim.
    """
    arms = []
    for due in _claimable_parts(bindparam("now"), kinds):  # type: ignore[arg-type]
        arm = select(discovery_jobs).where(due).order_by(_C.run_after).limit(bindparam("limit"))
        if skip_locked:  # PostgreSQL; SQLite's BEGIN IMMEDIATE already serializes writers
            arm = arm.with_for_update(skip_locked=True)
        arms.append(select(arm.subquery()))
    return union_all(*arms).limit(bindparam("limit"))


def has_claimable(db: Database, now: datetime | None = None, *, kinds: Collection[str] | None = None) -> bool:
    """Cheap read first, so idle workers do not queue on SQLite's write lock."""
    with db.read() as conn:
        query = select(discovery_jobs.c.id).where(_claimable(now or utcnow(), kinds)).limit(1)
        return conn.execute(query).first() is not None


def next_claimable_at(db: Database, *, kinds: Collection[str] | None = None) -> datetime | None:
    """When the earliest job that is not claimable yet becomes so (a retry's run_after, a lease's expiry).

    Time makes these claimable, and time sends no notification: an idle worker
    that listens sleeps until then (or its safety poll), whichever comes first.
    """
    c = discovery_jobs.c
    pending = select(func.min(c.run_after)).where(c.status == JobStatus.pending.value)
    leased = select(func.min(c.lease_expires_at)).where(c.status == JobStatus.processing.value)
    if kinds is not None:
        pending = pending.where(c.kind.in_(sorted(kinds)))
        leased = leased.where(c.kind.in_(sorted(kinds)))
    with db.read() as conn:
        row = conn.execute(select(pending.scalar_subquery(), leased.scalar_subquery())).one()
    times = [t for t in row if t is not None]
    return min(times) if times else None


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
    claimed = claim_many(db, worker_id, lease_seconds, 1, kinds=kinds, now=now)
    return claimed[0] if claimed else None


def claim_many(
    db: Database,
    worker_id: str,
    lease_seconds: float,
    limit: int,
    *,
    kinds: Collection[str] | None = None,
    now: datetime | None = None,
) -> list[tuple[Lease, Job]]:
    """Take up to ``limit`` of the oldest runnable jobs in one transaction, oldest first.

    Each job gets its own lease (token bumped, attempt counted) and its own
    ``claimed`` / ``taken_over`` event, exactly as if claimed alone; the
    transaction only saves the round trips and the commit. A caller asks for
    no more than it can start at once (a worker: its idle slots).
    """
    kind_set = None if kinds is None else frozenset(kinds)
    if not db.is_sqlite:
        return _claim_in_one_update(db, worker_id, lease_seconds, limit, kind_set, now)
    while True:
        at = now or utcnow()
        with db.write() as conn:
            probe = _claim_probe(kind_set, False)
            found = [Job.from_row(row) for row in conn.execute(probe, {"now": at, "limit": limit})]
            if not found:
                return []
            live = []
            for job in found:
                if job.attempts >= job.max_attempts:
                    # Its worker died during the last attempt (a worker that is alive
                    # charges no attempt for a database outage, so never lands here).
                    # A cancel request wins over the failure. With attempts left, a job
                    # whose cancel was asked is claimed as usual: its handler ends it at
                    # its first checkpoint, keeping what it had found.
                    apply_change(conn, job, _out_of_attempts(job), now=at)
                else:
                    live.append(job)
            if live:
                return _take(conn, live, worker_id, lease_seconds, at)
        # Only spent jobs were found (and ended): look for others in a new transaction.


def _claim_in_one_update(
    db: Database, worker_id: str, lease_seconds: float, limit: int, kinds: frozenset[str] | None, now: datetime | None
) -> list[tuple[Lease, Job]]:
    """PostgreSQL: the claim as one UPDATE … FROM (the locked rows) RETURNING, then the events, in one transaction.

    A job whose worker died in its last attempt is not taken here but ended
    (``reap_spent``) when the claim finds fewer jobs than asked for, and by each
    worker's lease heartbeat, so a busy queue does not keep it waiting either.
    """
    at = now or utcnow()
    with db.write() as conn:
        rows = conn.execute(
            _claim_update(kinds),
            {
                "now": at,
                "limit": limit,
                "v_owner": worker_id,
                "v_expires": at + timedelta(seconds=lease_seconds),
                "v_at": at,
            },
        ).all()
        claimed = _leased(conn, [(JobStatus(row.was), Job.from_row(row)) for row in rows], worker_id, at)
        if len(claimed) < limit:
            _reap(conn, at, kinds, skip_locked=True)
    return claimed


@functools.cache
def _claim_update(kinds: frozenset[str] | None) -> Any:
    c = _C
    expired, due = _claimable_parts(bindparam("now"), kinds)  # type: ignore[arg-type]
    arms = [
        select(
            select(c.id, c.status)
            .where(where)
            .order_by(c.run_after)
            .limit(bindparam("limit"))
            .with_for_update(skip_locked=True)
            .subquery()
        )
        for where in (and_(expired, c.attempts < c.max_attempts), due)
    ]
    picked = union_all(*arms).limit(bindparam("limit")).subquery("picked")
    return (
        update(discovery_jobs)
        .where(c.id == picked.c.id)
        .values(_TAKE_VALUES)
        .returning(*discovery_jobs.c, picked.c.status.label("was"))
    )


def reap_spent(db: Database, *, kinds: Collection[str] | None = None, now: datetime | None = None) -> int:
    """End the jobs whose worker died during their last attempt (failed, or cancelled if asked); how many."""
    with db.write() as conn:
        return _reap(conn, now or utcnow(), None if kinds is None else frozenset(kinds), skip_locked=not db.is_sqlite)


def _reap(conn: Connection, at: datetime, kinds: frozenset[str] | None, *, skip_locked: bool) -> int:
    expired, _ = _claimable_parts(at, kinds)
    query = select(discovery_jobs).where(expired, _C.attempts >= _C.max_attempts).limit(100)
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    spent = [Job.from_row(row) for row in conn.execute(query)]
    for job in spent:
        apply_change(conn, job, _out_of_attempts(job), now=at)
    return len(spent)


_TAKE_VALUES = {
    "status": JobStatus.processing.value,
    "lease_owner": bindparam("v_owner"),
    "lease_token": _C.lease_token + 1,
    "lease_expires_at": bindparam("v_expires"),
    "attempts": _C.attempts + 1,
    "started_at": func.coalesce(_C.started_at, bindparam("v_at")),
    "event_seq": _C.event_seq + 1,
    "updated_at": bindparam("v_at"),
}
_TAKE = (
    update(discovery_jobs)
    .where(_C.id.in_(_CLAIM_IDS))
    .values(_TAKE_VALUES)
    .returning(*discovery_jobs.c)
)


def _take(
    conn: Connection, jobs: list[Job], worker_id: str, lease_seconds: float, at: datetime
) -> list[tuple[Lease, Job]]:
    """Lease ``jobs`` (held by this transaction): one UPDATE for all, then each one's hook and event."""
    rows = conn.execute(
        _TAKE,
        {
            "claim_ids": [job.id for job in jobs],
            "v_owner": worker_id,
            "v_expires": at + timedelta(seconds=lease_seconds),
            "v_at": at,
        },
    ).all()
    updated = {row.id: Job.from_row(row) for row in rows}
    if len(updated) != len(jobs):  # cannot happen while the rows are held
        raise LeaseLost("claimed jobs changed underneath this transaction")
    return _leased(conn, [(before.status, updated[before.id]) for before in jobs], worker_id, at)


def _leased(
    conn: Connection, jobs: list[tuple[JobStatus, Job]], worker_id: str, at: datetime
) -> list[tuple[Lease, Job]]:
    """After the claim's UPDATE (each job: its status before, the job now): the kinds' hooks, one event each."""
    claimed, events = [], []
    for was, job in jobs:
        if was != job.status:
            hook = status_hook(job.kind)
            if hook is not None:
                hook(conn, job, at)
        data = {
            **job.snapshot(),
            "message": job.running_label,
            "attempt": job.attempts,
            "worker": worker_id,
        }
        kind = "taken_over" if was == JobStatus.processing else "claimed"
        events.append({"job_id": job.id, "seq": job.event_seq, "kind": kind, "data": data, "created_at": at})
        mark_changed(conn, job.id)
        claimed.append((Lease(job_id=job.id, worker_id=worker_id, token=job.lease_token), job))
    if events:
        conn.execute(_INSERT_EVENT, events)
    return claimed


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


_RENEW = (
    update(discovery_jobs)
    .where(_C.id.in_(_CLAIM_IDS), _C.lease_owner == bindparam("w_owner"), _C.status == JobStatus.processing.value)
    .values(lease_expires_at=bindparam("v_expires"))
    .returning(_C.id, _C.lease_token, _C.cancel_requested)
)


def renew_leases(
    db: Database, leases: Collection[Lease], lease_seconds: float, *, now: datetime | None = None
) -> dict[Lease, bool]:
    """Extend the leases of one worker in one statement: each lease still held → its job's cancel flag.

    A lease missing from the answer was lost (taken over, or its job ended).
    Like ``renew_lease``, bookkeeping: no event.
    """
    if not leases:
        return {}
    owners = {lease.worker_id for lease in leases}
    if len(owners) != 1:
        raise ValueError("renew_leases renews the leases of one worker")
    now = now or utcnow()
    with db.write() as conn:
        rows = conn.execute(
            _RENEW,
            {
                "claim_ids": sorted({lease.job_id for lease in leases}),
                "w_owner": owners.pop(),
                "v_expires": now + timedelta(seconds=lease_seconds),
            },
        ).all()
    held = {(row.id, row.lease_token): bool(row.cancel_requested) for row in rows}
    return {lease: held[(lease.job_id, lease.token)] for lease in leases if (lease.job_id, lease.token) in held}


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
