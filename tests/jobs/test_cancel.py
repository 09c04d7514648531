"""A cancel request wins: over the retry of a failed attempt, and over a dead worker."""

from __future__ import annotations

from datetime import timedelta

from prospectpro.domain.clock import utcnow
from prospectpro.domain.status import JobStatus
from prospectpro.jobs import queue
from prospectpro.store.db import Database
from prospectpro.store.schema import LOCAL_USER_ID
from tests.jobs.test_queue import events_of
from tests.support import make_job


def kinds_of(db: Database, job_id: str) -> list[str]:
    return [kind for _, kind in events_of(db, job_id)]


def test_an_attempt_failing_after_a_cancel_request_ends_cancelled_not_retried(any_db: Database) -> None:
    db = any_db
    make_job(db, max_attempts=3)
    lease, job = queue.claim(db, "w", lease_seconds=30)  # type: ignore[misc]
    assert queue.request_cancel(db, job.id, LOCAL_USER_ID).cancel_requested
    ended = queue.record_failure(db, lease, "enriching_contacts: RuntimeError: boom", base=0.01, cap=0.01)
    assert ended.status == JobStatus.cancelled and ended.attempts == 1
    assert kinds_of(db, job.id) == ["created", "claimed", "cancel_requested", "cancelled"]
    assert queue.claim(db, "w", lease_seconds=30) is None


def test_cancelling_a_job_whose_worker_died_ends_it_at_once(any_db: Database) -> None:
    db = any_db
    make_job(db, max_attempts=3)
    _, job = queue.claim(db, "dead", lease_seconds=0.05)  # type: ignore[misc]
    later = utcnow() + timedelta(seconds=0.1)  # the lease has run out: nobody holds the job any more
    cancelled = queue.request_cancel(db, job.id, LOCAL_USER_ID, now=later)
    assert cancelled.status == JobStatus.cancelled and cancelled.lease_owner is None
    assert kinds_of(db, job.id) == ["created", "claimed", "cancelled"]
    assert queue.claim(db, "w", lease_seconds=30) is None  # nothing left to take over


def test_a_live_workers_job_is_still_cancelled_at_its_checkpoint(any_db: Database) -> None:
    db = any_db
    make_job(db)
    _, job = queue.claim(db, "alive", lease_seconds=30)  # type: ignore[misc]
    asked = queue.request_cancel(db, job.id, LOCAL_USER_ID)
    assert asked.status == JobStatus.processing and asked.cancel_requested
    assert queue.request_cancel(db, job.id, LOCAL_USER_ID).event_seq == asked.event_seq  # asking twice adds nothing


def test_a_dead_workers_last_attempt_with_a_cancel_request_ends_cancelled_not_failed(any_db: Database) -> None:
    db = any_db
    make_job(db, max_attempts=1)
    _, job = queue.claim(db, "dies-later", lease_seconds=0.5)  # type: ignore[misc]
    queue.request_cancel(db, job.id, LOCAL_USER_ID)  # asked while the worker was alive
    later = utcnow() + timedelta(seconds=0.6)  # then it died
    assert queue.claim(db, "w", lease_seconds=30, now=later) is None
    after = queue.get_job(db, job.id)
    assert after.status == JobStatus.cancelled and after.error is None
    assert kinds_of(db, job.id)[-1] == "cancelled"
