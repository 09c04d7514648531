"""What the queue stopped doing per job keeps every guarantee: batch claims (each job its own
lease, token and event; never more than the free slots), one lease heartbeat per worker, the
one-statement fenced change, the jobs of dead workers ended while the queue stays busy, and
the pool's ping only for connections that sat idle."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from prospectpro.domain.clock import utcnow
from prospectpro.domain.status import JobStatus
from prospectpro.jobs import queue
from prospectpro.jobs.kinds import JobKind
from prospectpro.jobs.model import Change, Job, LeaseLost
from prospectpro.jobs.run import JobRun
from prospectpro.jobs.worker import Worker, WorkerConfig
from prospectpro.store import db as store_db
from prospectpro.store.db import Database
from prospectpro.store.schema import LOCAL_USER_ID, job_events
from tests.jobs.test_queue import events_of

KIND = "throughput"


def enqueue(db: Database, n: int = 1, *, max_attempts: int = 3) -> list[Job]:
    jobs = []
    for _ in range(n):  # one transaction each: distinct run_after, so "oldest first" is defined
        with db.write() as conn:
            jobs.append(
                queue.insert_job(
                    conn, queue.NewJob(kind=KIND, owner_id=LOCAL_USER_ID, config={}, max_attempts=max_attempts)
                )
            )
    return jobs


def complete(run: JobRun) -> None:
    run.change(Change(kind="completed", status=JobStatus.completed, progress=100))


@pytest.fixture
def start_worker() -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(db: Database, handler: Callable[[JobRun], None], **config: Any) -> Worker:
        worker = Worker(db, [JobKind(KIND, handler)], WorkerConfig(**{"lease_seconds": 5.0, "poll_interval": 0.05, **config}))
        started.append(worker.start())
        return worker

    yield start
    for worker in started:
        worker.stop(timeout=10)


def wait_all_terminal(db: Database, ids: list[str], timeout: float = 20.0) -> list[Job]:
    deadline = time.monotonic() + timeout
    while True:
        jobs = [queue.get_job(db, i) for i in ids]
        if all(j.status.terminal for j in jobs):
            return jobs
        assert time.monotonic() < deadline, [j.status for j in jobs]
        time.sleep(0.02)


def test_a_batch_claim_gives_each_job_its_own_lease_and_event_oldest_first(any_db: Database) -> None:
    jobs = enqueue(any_db, 5)
    claimed = queue.claim_many(any_db, "w", 30, 3, kinds={KIND})
    assert [job.id for _, job in sorted(claimed, key=lambda c: c[1].run_after)] == [j.id for j in jobs[:3]]
    for lease, job in claimed:
        assert lease.job_id == job.id and lease.worker_id == "w" and lease.token == 1 == job.lease_token
        assert job.status == JobStatus.processing and job.attempts == 1 and job.lease_owner == "w"
        assert events_of(any_db, job.id) == [(1, "created"), (2, "claimed")]
        data = queue.list_events(any_db, job.id)[1].data
        assert data["attempt"] == 1 and data["worker"] == "w" and data["status"] == "processing"
    for job in jobs[3:]:  # never more than asked for
        assert queue.get_job(any_db, job.id).status == JobStatus.pending
    rest = queue.claim_many(any_db, "w2", 30, 10, kinds={KIND})
    assert sorted(job.id for _, job in rest) == sorted(j.id for j in jobs[3:])
    assert queue.claim_many(any_db, "w3", 30, 10, kinds={KIND}) == []


def test_a_batch_claim_takes_over_expired_leases_first_and_fences_their_old_holder(any_db: Database) -> None:
    first, second = enqueue(any_db, 2)
    now = utcnow()
    lease_a, job_a = queue.claim(any_db, "A", 30, kinds={KIND}, now=now)  # type: ignore[misc]
    assert job_a.id == first.id
    later = now + timedelta(seconds=31)
    claimed = queue.claim_many(any_db, "B", 30, 2, kinds={KIND}, now=later)
    by_id = {job.id: (lease, job) for lease, job in claimed}
    assert set(by_id) == {first.id, second.id}
    assert by_id[first.id][0].token == lease_a.token + 1 and by_id[first.id][1].attempts == 2
    assert [k for _, k in events_of(any_db, first.id)] == ["created", "claimed", "taken_over"]
    assert [k for _, k in events_of(any_db, second.id)] == ["created", "claimed"]
    with pytest.raises(LeaseLost):
        JobRun(db=any_db, lease=lease_a, job=job_a).change(Change(kind="late", progress=50))
    assert queue.renew_leases(any_db, [lease_a], 30, now=later) == {}


def test_the_job_of_a_dead_worker_in_its_last_attempt_ends_while_the_queue_stays_busy(any_db: Database) -> None:
    (spent,) = enqueue(any_db, 1, max_attempts=1)
    pending = enqueue(any_db, 2)
    now = utcnow()
    queue.claim(any_db, "dead", 30, kinds={KIND}, now=now)
    later = now + timedelta(seconds=31)
    claimed = queue.claim_many(any_db, "w", 30, 1, kinds={KIND}, now=later)
    assert [job.id for _, job in claimed] == [pending[0].id]  # the spent job is not run again
    queue.reap_spent(any_db, kinds={KIND}, now=later)  # what each worker's heartbeat does
    ended = queue.get_job(any_db, spent.id)
    assert ended.status == JobStatus.failed and "stopped responding" in (ended.error or "")
    assert [k for _, k in events_of(any_db, spent.id)] == ["created", "claimed", "failed"]
    assert queue.reap_spent(any_db, kinds={KIND}, now=later) == 0


def test_the_one_statement_change_writes_the_row_and_one_event_that_match(any_db: Database) -> None:
    (job,) = enqueue(any_db)
    lease, claimed = queue.claim(any_db, "w", 30, kinds={KIND})  # type: ignore[misc]
    run = JobRun(db=any_db, lease=lease, job=claimed)
    changed = run.change(Change(kind="tick", stage="ticking", progress=40, metrics={"a": {"x": 1}}))
    changed = run.change(Change(kind="tick", progress=30, metrics={"a": {"y": 2}}))
    stored = queue.get_job(any_db, job.id)
    assert changed.snapshot() == stored.snapshot()
    assert stored.progress == 40 and stored.metrics == {"a": {"x": 1, "y": 2}} and stored.current_stage == "ticking"
    last = queue.list_events(any_db, job.id)[-1]
    assert last.seq == stored.event_seq == 4 and last.kind == "tick"
    assert {k: v for k, v in last.data.items() if k != "message"} == stored.snapshot()


def test_a_change_after_someone_else_wrote_reads_the_row_and_sees_their_write(any_db: Database) -> None:
    (job,) = enqueue(any_db)
    lease, claimed = queue.claim(any_db, "w", 30, kinds={KIND})  # type: ignore[misc]
    run = JobRun(db=any_db, lease=lease, job=claimed)
    queue.request_cancel(any_db, job.id, LOCAL_USER_ID)  # bumps the row's sequence behind the run's back
    changed = run.change(Change(kind="tick", progress=10))
    assert changed.cancel_requested and run.cancel_seen.is_set() and changed.event_seq == 4
    assert [k for _, k in events_of(any_db, job.id)] == ["created", "claimed", "cancel_requested", "tick"]


def test_a_worker_never_holds_more_jobs_than_slots_and_claims_for_idle_slots_together(
    any_db: Database, start_worker: Callable[..., Worker]
) -> None:
    gate = threading.Event()
    running: set[str] = set()
    most = 0
    lock = threading.Lock()

    def handler(run: JobRun) -> None:
        nonlocal most
        with lock:
            running.add(run.job.id)
            most = max(most, len(running))
        gate.wait(10)
        with lock:
            running.discard(run.job.id)
        complete(run)

    jobs = enqueue(any_db, 7)
    start_worker(any_db, handler, concurrency=3)
    deadline = time.monotonic() + 10
    while len(running) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.1)
    held = [j for j in (queue.get_job(any_db, j.id) for j in jobs) if j.status == JobStatus.processing]
    assert len(held) == 3  # three slots: three jobs held, the others still pending
    gate.set()
    done = wait_all_terminal(any_db, [j.id for j in jobs])
    assert all(j.status == JobStatus.completed and j.attempts == 1 for j in done) and most == 3
    with any_db.read() as conn:
        claims = conn.execute(select(job_events.c.created_at).where(job_events.c.kind == "claimed")).scalars().all()
    assert len(claims) == 7 and len(set(claims)) < 7  # some claimed together, in one transaction


def test_one_heartbeat_thread_keeps_every_lease_of_a_worker(
    any_db: Database, start_worker: Callable[..., Worker]
) -> None:
    def slow(run: JobRun) -> None:
        time.sleep(1.6)  # more than two lease lengths: only renewals keep the jobs
        complete(run)

    jobs = enqueue(any_db, 2)
    start_worker(any_db, slow, concurrency=2, lease_seconds=0.6)
    time.sleep(0.3)
    beats = [t for t in threading.enumerate() if t.name == "lease-heartbeat"]
    assert len(beats) == 1
    rival = queue.claim(any_db, "rival", 30, kinds={KIND})  # a lease never runs out meanwhile
    assert rival is None
    done = wait_all_terminal(any_db, [j.id for j in jobs])
    assert all(j.status == JobStatus.completed and j.attempts == 1 for j in done)
    for job in jobs:
        assert [k for _, k in events_of(any_db, job.id)] == ["created", "claimed", "completed"]


def test_a_lease_taken_over_is_seen_by_the_heartbeat_and_the_old_run_writes_nothing(
    any_db: Database, start_worker: Callable[..., Worker]
) -> None:
    seen_lost = threading.Event()

    def handler(run: JobRun) -> None:
        # Freeze as a stalled process would, long enough for the lease to be taken over.
        queue.claim(any_db, "B", 30, kinds={KIND}, now=utcnow() + timedelta(seconds=10))
        if run.lease_lost.wait(5):
            seen_lost.set()
        with pytest.raises(LeaseLost):
            complete(run)

    (job,) = enqueue(any_db)
    start_worker(any_db, handler, lease_seconds=0.6)
    assert seen_lost.wait(10)
    stored = queue.get_job(any_db, job.id)
    assert stored.lease_owner == "B" and stored.status == JobStatus.processing
    assert [k for _, k in events_of(any_db, job.id)] == ["created", "claimed", "taken_over"]


@pytest.mark.postgres
def test_a_connection_that_broke_while_idle_is_replaced_before_use(
    pg_server: Database, pg_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pg_db.read() as conn:
        conn.exec_driver_sql("SELECT 1")
    with pg_server.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as admin:
        admin.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %(name)s",
            {"name": pg_db.engine.url.database},
        )
    monkeypatch.setattr(store_db, "PING_AFTER_IDLE_SECONDS", 0.0)  # it has sat idle long enough
    with pg_db.read() as conn:
        assert conn.exec_driver_sql("SELECT 2").scalar() == 2
