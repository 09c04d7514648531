"""The durable queue's invariants, on the real store."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from prospectpro.domain.campaign import Stage
from prospectpro.domain.clock import utcnow
from prospectpro.domain.status import JobStatus
from prospectpro.jobs import queue
from prospectpro.jobs.model import Change, JobFinished, LeaseLost
from prospectpro.jobs.run import JobRun
from prospectpro.store.db import Database
from prospectpro.store.schema import LOCAL_USER_ID, campaigns, job_events
from tests.support import make_job


def events_of(db: Database, job_id: str) -> list[tuple[int, str]]:
    with db.read() as conn:
        rows = conn.execute(
            select(job_events.c.seq, job_events.c.kind).where(job_events.c.job_id == job_id).order_by(job_events.c.seq)
        ).all()
    return [(r.seq, r.kind) for r in rows]


def test_enqueue_writes_job_and_first_event(any_db: Database) -> None:
    db = any_db
    job = make_job(db)
    assert job.status == JobStatus.pending
    assert events_of(db, job.id) == [(1, "created")]


def test_claim_takes_oldest_pending_and_leases_it(any_db: Database) -> None:
    db = any_db
    first = make_job(db)
    make_job(db)
    claimed = queue.claim(db, "w1", lease_seconds=30)
    assert claimed is not None
    lease, job = claimed
    assert job.id == first.id and job.status == JobStatus.processing
    assert lease.token == 1 and job.attempts == 1 and job.lease_owner == "w1"
    assert events_of(db, first.id) == [(1, "created"), (2, "claimed")]


def test_claim_returns_none_when_queue_empty(any_db: Database) -> None:
    db = any_db
    assert queue.claim(db, "w1", lease_seconds=30) is None
    assert not queue.has_claimable(db)


def test_expired_lease_is_taken_over_and_old_holder_is_fenced(any_db: Database) -> None:
    db = any_db
    make_job(db)
    lease_a, job = queue.claim(db, "A", lease_seconds=0.05)  # type: ignore[misc]
    later = utcnow() + timedelta(seconds=0.1)  # A's lease has run out by then
    lease_b, job_b = queue.claim(db, "B", lease_seconds=30, now=later)  # type: ignore[misc]
    assert job_b.id == job.id and lease_b.token == lease_a.token + 1
    run_a = JobRun(db=db, lease=lease_a, job=job)
    with pytest.raises(LeaseLost):
        run_a.change(Change(kind="progress", progress=60, metrics={"x": 1}))
    assert queue.renew_lease(db, lease_a, 30) is None
    after = queue.get_job(db, job.id)
    assert after.lease_owner == "B" and after.progress == 0 and "x" not in after.metrics
    assert [k for _, k in events_of(db, job.id)] == ["created", "claimed", "taken_over"]


def test_fenced_write_rolls_back_the_stage_rows_too(any_db: Database) -> None:
    db = any_db
    make_job(db)
    lease_a, job = queue.claim(db, "A", lease_seconds=0.05)  # type: ignore[misc]
    queue.claim(db, "B", lease_seconds=30, now=utcnow() + timedelta(seconds=0.1))
    run_a = JobRun(db=db, lease=lease_a, job=job)

    def write(conn):  # type: ignore[no-untyped-def]
        conn.execute(campaigns.update().values(results_count=999))

    with pytest.raises(LeaseLost):
        run_a.change(Change(kind="x"), write=write)
    with db.read() as conn:
        assert conn.execute(select(campaigns.c.results_count)).scalar() == 0


def test_progress_never_goes_down_and_metrics_merge(any_db: Database) -> None:
    db = any_db
    make_job(db)
    lease, job = queue.claim(db, "w", lease_seconds=30)  # type: ignore[misc]
    run = JobRun(db=db, lease=lease, job=job)
    run.change(Change(kind="p", stage=Stage.enriching_contacts, progress=70, metrics={"a": 1, "nested": {"x": 1}}))
    job = run.change(Change(kind="p", progress=40, metrics={"b": 2, "nested": {"y": 2}}))
    assert job.progress == 70
    assert job.metrics == {"a": 1, "b": 2, "nested": {"x": 1, "y": 2}}


def test_terminal_states_are_final(any_db: Database) -> None:
    db = any_db
    make_job(db)
    lease, job = queue.claim(db, "w", lease_seconds=30)  # type: ignore[misc]
    run = JobRun(db=db, lease=lease, job=job)
    run.change(Change(kind="completed", status=JobStatus.completed, progress=100))
    with db.write() as conn:
        locked = queue.lock_job(conn, job.id)
        with pytest.raises(JobFinished):
            queue.apply_change(conn, locked, Change(kind="late", status=JobStatus.processing))
    assert queue.request_cancel(db, job.id, LOCAL_USER_ID).status == JobStatus.completed
    assert queue.claim(db, "w2", lease_seconds=30) is None


def test_event_sequence_is_gap_free_under_concurrent_writers(any_db: Database) -> None:
    db = any_db
    import threading

    make_job(db)
    lease, job = queue.claim(db, "w", lease_seconds=30)  # type: ignore[misc]
    run = JobRun(db=db, lease=lease, job=job)

    def bump(n: int) -> None:
        for i in range(20):
            run.change(Change(kind="tick", metrics={f"t{n}": i}))

    threads = [threading.Thread(target=bump, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seqs = [s for s, _ in events_of(db, job.id)]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) == 2 + 80


def test_failure_is_retried_with_backoff_then_fails_readably(any_db: Database) -> None:
    db = any_db
    make_job(db, max_attempts=2)
    lease, job = queue.claim(db, "w", lease_seconds=30)  # type: ignore[misc]
    job = queue.record_failure(db, lease, "enriching_contacts: RuntimeError: boom", base=0.05, cap=0.05)
    assert job.status == JobStatus.pending and job.run_after > job.updated_at
    assert queue.claim(db, "w", lease_seconds=30, now=job.updated_at) is None  # not due yet
    lease, job = queue.claim(db, "w", lease_seconds=30, now=utcnow() + timedelta(seconds=0.1))  # type: ignore[misc]
    assert job.attempts == 2
    job = queue.record_failure(db, lease, "enriching_contacts: RuntimeError: boom", base=0.05, cap=0.05)
    assert job.status == JobStatus.failed
    assert job.error == "enriching_contacts: RuntimeError: boom (after 2 attempts)"
    kinds = [k for _, k in events_of(db, job.id)]
    assert kinds == ["created", "claimed", "retry_scheduled", "claimed", "failed"]


def test_dead_worker_past_the_last_attempt_fails_the_job(any_db: Database) -> None:
    db = any_db
    make_job(db, max_attempts=1)
    queue.claim(db, "w", lease_seconds=0.05)
    assert queue.claim(db, "w2", lease_seconds=30, now=utcnow() + timedelta(seconds=0.1)) is None
    job = queue.list_jobs(db, LOCAL_USER_ID)[0][0]
    assert job.status == JobStatus.failed and "stopped responding" in (job.error or "")


def test_cancel_pending_is_immediate_and_running_is_cooperative(any_db: Database) -> None:
    db = any_db
    pending = make_job(db)
    assert queue.request_cancel(db, pending.id, LOCAL_USER_ID).status == JobStatus.cancelled
    running = make_job(db)
    lease, job = queue.claim(db, "w", lease_seconds=30)  # type: ignore[misc]
    assert job.id == running.id
    job = queue.request_cancel(db, running.id, LOCAL_USER_ID)
    assert job.status == JobStatus.processing and job.cancel_requested
    assert queue.renew_lease(db, lease, 30) is True


def test_another_owner_cannot_see_or_cancel(any_db: Database) -> None:
    db = any_db
    from prospectpro.errors import NotFound

    job = make_job(db)
    with pytest.raises(NotFound):
        queue.get_job(db, job.id, "someone-else")
    with pytest.raises(NotFound):
        queue.request_cancel(db, job.id, "someone-else")


def test_release_gives_the_job_back_without_spending_an_attempt(any_db: Database) -> None:
    db = any_db
    make_job(db)
    lease, job = queue.claim(db, "w", lease_seconds=30)  # type: ignore[misc]
    queue.release(db, lease)
    again = queue.claim(db, "w2", lease_seconds=30)
    assert again is not None and again[1].attempts == 1
