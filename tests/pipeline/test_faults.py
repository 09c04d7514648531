"""Enrichment steps that fail or hang, and cancels meanwhile: the job ends, and ends as asked."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from prospectpro.config import Settings
from prospectpro.domain.status import JobStatus
from prospectpro.jobs.queue import get_job, list_events, request_cancel
from prospectpro.jobs.worker import Worker
from prospectpro.services.campaigns import list_leads
from prospectpro.store.db import Database
from prospectpro.store.schema import LOCAL_USER_ID
from tests.pipeline.conftest import make_pipeline, submit, wait_until_done
from tests.plugins import HangingEnricher

FAST_RETRY = {"retry_base_seconds": 0.01, "retry_max_seconds": 0.02}


@pytest.fixture
def hanging() -> Iterator[Callable[..., HangingEnricher]]:
    made: list[HangingEnricher] = []

    def make(**kw: object) -> HangingEnricher:
        made.append(HangingEnricher(**kw))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for step in made:  # let abandoned threads end
        step.release.set()


def kinds_of(db: Database, job_id: str) -> list[str]:
    return [e.kind for e in list_events(db, job_id)]


def test_cancel_during_enrichment_then_a_failing_step_ends_cancelled_with_the_leads_so_far(
    places_db: Database, run_worker: Callable[..., Worker], hanging: Callable[..., HangingEnricher]
) -> None:
    db = places_db
    job = submit(db, Settings(max_attempts=3), max_results=10)
    step = hanging(after=3, fail=True)  # three leads, then the provider hangs and fails
    run_worker(db, make_pipeline(db, step, concurrency=1), **FAST_RETRY)
    assert step.entered.wait(30)
    request_cancel(db, job.id, LOCAL_USER_ID)
    step.release.set()  # the hung call raises now: the attempt fails after the cancel request
    final = wait_until_done(db, job.id)
    kinds = kinds_of(db, job.id)
    assert final.status == JobStatus.cancelled, kinds
    assert final.attempts == 1 and "retry_scheduled" not in kinds and "failed" not in kinds
    assert kinds[-1] == "cancelled" and kinds.count("lead_enriched") == 3
    _, total = list_leads(db, final.campaign_id, LOCAL_USER_ID)
    assert total == 3 == final.metrics["leads"]


def test_a_hung_enrichment_step_fails_the_attempt_at_its_deadline(
    places_db: Database, run_worker: Callable[..., Worker], hanging: Callable[..., HangingEnricher]
) -> None:
    db = places_db
    job = submit(db, Settings(max_attempts=2), max_results=5)
    step = hanging(after=2)  # two leads, then every call hangs
    pipeline = replace(make_pipeline(db, step, concurrency=2), enrich_step_timeout=0.5)
    worker = run_worker(db, pipeline, **FAST_RETRY)
    started = time.monotonic()
    final = wait_until_done(db, job.id, timeout=30)
    assert time.monotonic() - started < 15
    assert final.status == JobStatus.failed and final.attempts == 2
    assert final.error is not None and final.error.startswith(
        "enriching_contacts: TimeoutError: enrichment step 'hanging' took over 0.5s for "
    )
    kinds = kinds_of(db, job.id)
    assert kinds.count("retry_scheduled") == 1 and kinds.count("lead_enriched") == 2
    # The hung threads hold nothing: the worker stops at once, and the job's lease is no longer renewed.
    stopping = time.monotonic()
    worker.stop(timeout=10)
    assert time.monotonic() - stopping < 3
    assert get_job(db, job.id).lease_expires_at is None


def test_a_cancel_is_seen_while_a_step_hangs(
    places_db: Database, run_worker: Callable[..., Worker], hanging: Callable[..., HangingEnricher]
) -> None:
    db = places_db
    job = submit(db, max_results=5)
    step = hanging(after=1)
    run_worker(db, make_pipeline(db, step, concurrency=1), lease_seconds=1.5)  # the step deadline is 120 s
    assert step.entered.wait(30)
    request_cancel(db, job.id, LOCAL_USER_ID)
    final = wait_until_done(db, job.id, timeout=10)
    assert final.status == JobStatus.cancelled and final.metrics["leads"] == 1
