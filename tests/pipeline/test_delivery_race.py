"""Two campaigns of one owner running at once deliver each business once (issue 7, item 9).

The scoring stage skips what the owner received before it ran; two
campaigns for the same area, scored before either stored its leads, both
selected the same businesses and both delivered them. The storing step now
takes a (owner, business) delivery record, and the campaign that finds it
taken skips the business.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from prospectpro.config import Settings
from prospectpro.domain.campaign import CampaignRequest
from prospectpro.domain.status import JobStatus
from prospectpro.jobs.model import Job
from prospectpro.jobs.worker import Worker
from prospectpro.pipeline import results
from prospectpro.places.importer import ensure_bundled_places
from prospectpro.services.campaigns import list_leads
from prospectpro.services.submissions import submit_campaign
from prospectpro.services.users import create_user
from prospectpro.store.db import Database
from prospectpro.store.schema import LOCAL_USER_ID, delivered_businesses, job_candidates
from tests.pipeline.conftest import make_pipeline, wait_until_done

WANTED = 10


@pytest.fixture
def places(any_db: Database) -> Database:
    ensure_bundled_places(any_db)
    return any_db


def submit(db: Database, owner_id: str, **fields: Any) -> Job:
    request = CampaignRequest.model_validate(
        {"business_type": "cafe", "location": "Helsinki", "max_results": WANTED, **fields}
    )
    return submit_campaign(db, Settings(), owner_id, request).job


def hold_at(monkeypatch: pytest.MonkeyPatch, name: str, parties: int) -> threading.Barrier:
    """Make each job wait at ``results.<name>`` until ``parties`` jobs have got there."""
    barrier = threading.Barrier(parties, timeout=60)
    original: Callable[..., Any] = getattr(results, name)

    def held(*args: Any, **kwargs: Any) -> Any:
        barrier.wait()
        return original(*args, **kwargs)

    monkeypatch.setattr(results, name, held)
    return barrier


def lead_keys(db: Database, job: Job) -> list[str]:
    leads, _ = list_leads(db, job.campaign_id, job.owner_id)
    return [lead["business_name"] + "|" + (lead["address"] or "") for lead in leads]


def delivered_count(db: Database, owner_id: str) -> int:
    with db.read() as conn:
        return conn.execute(
            select(func.count()).select_from(delivered_businesses).where(delivered_businesses.c.owner_id == owner_id)
        ).scalar_one()


def run_all(db: Database, run_worker: Callable[..., Worker], jobs: list[Job]) -> list[Job]:
    run_worker(db, make_pipeline(db), concurrency=len(jobs))
    return [wait_until_done(db, job.id) for job in jobs]


def check_each_business_delivered_once(db: Database, mine: list[Job], theirs: Job) -> None:
    assert all(job.status == JobStatus.completed for job in [*mine, theirs])
    first, second = (lead_keys(db, job) for job in mine)
    assert not set(first) & set(second), "two campaigns of one owner delivered the same businesses"
    assert len(first) + len(second) == WANTED  # both selected the same top ten: one campaign got them
    winner, loser = sorted(mine, key=lambda job: -job.metrics["leads"])
    assert winner.metrics["leads"] == WANTED and winner.metrics["exhausted"] is False
    # The loser was outrun after it had selected and enriched them: it ends with fewer, and says why.
    assert loser.metrics["leads"] == 0 and loser.metrics["exhausted"] is True
    assert loser.metrics["delivered_skipped"] == WANTED
    assert "another of your campaigns" in loser.metrics["summary"]
    with db.read() as conn:
        marked = conn.execute(
            select(func.count()).where(job_candidates.c.job_id == loser.id, job_candidates.c.delivered_before.is_(True))
        ).scalar_one()
    assert marked == WANTED
    # Another owner is not affected by this owner's deliveries.
    assert sorted(lead_keys(db, theirs)) == sorted(first + second)
    assert delivered_count(db, LOCAL_USER_ID) == delivered_count(db, theirs.owner_id) == WANTED


def test_campaigns_of_one_owner_scored_together_deliver_each_business_once(
    places: Database, run_worker: Callable[..., Worker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both are scored before either stores (on SQLite the two stores then take turns)."""
    other, _ = create_user(places, "other")
    mine = [submit(places, LOCAL_USER_ID), submit(places, LOCAL_USER_ID)]
    theirs = submit(places, other.user_id)
    hold_at(monkeypatch, "store", parties=3)
    *mine_done, theirs_done = run_all(places, run_worker, [*mine, theirs])
    check_each_business_delivered_once(places, mine_done, theirs_done)


@pytest.mark.postgres
def test_two_storing_transactions_at_once_on_postgresql_deliver_each_business_once(
    pg_db: Database, run_worker: Callable[..., Worker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both storing transactions are open, have read their selected candidates and
    then claim the same businesses at the same moment, on two connections."""
    ensure_bundled_places(pg_db)
    other, _ = create_user(pg_db, "other")
    mine = [submit(pg_db, LOCAL_USER_ID), submit(pg_db, LOCAL_USER_ID)]
    theirs = submit(pg_db, other.user_id)
    hold_at(monkeypatch, "claim_deliveries", parties=3)
    *mine_done, theirs_done = run_all(pg_db, run_worker, [*mine, theirs])
    check_each_business_delivered_once(pg_db, mine_done, theirs_done)


def store_in_order(monkeypatch: pytest.MonkeyPatch, order: list[Job]) -> None:
    """Both jobs are scored before either stores; then they store in this order."""
    barrier = threading.Barrier(len(order), timeout=60)
    turns = {job.id: threading.Event() for job in order}
    original = results.store

    def ordered(run: Any, **kwargs: Any) -> None:
        barrier.wait()
        index = [job.id for job in order].index(run.job.id)
        if index:
            assert turns[order[index - 1].id].wait(60)
        try:
            original(run, **kwargs)
        finally:
            turns[run.job.id].set()

    monkeypatch.setattr(results, "store", ordered)


@pytest.mark.parametrize("repeat_first", [False, True])
def test_include_delivered_gets_the_businesses_anyway_and_records_them(
    places: Database, run_worker: Callable[..., Worker], monkeypatch: pytest.MonkeyPatch, repeat_first: bool
) -> None:
    plain = submit(places, LOCAL_USER_ID)
    repeat = submit(places, LOCAL_USER_ID, include_delivered=True)
    store_in_order(monkeypatch, [repeat, plain] if repeat_first else [plain, repeat])
    plain_done, repeat_done = run_all(places, run_worker, [plain, repeat])
    # A campaign asking for repeats needs no delivery record: it gets the businesses either way.
    assert repeat_done.metrics["leads"] == WANTED
    # But it delivers them, like any campaign: one that stores after it skips them.
    assert plain_done.metrics["leads"] == (0 if repeat_first else WANTED)
    assert delivered_count(places, LOCAL_USER_ID) == WANTED
    monkeypatch.undo()
    later = wait_until_done(places, submit(places, LOCAL_USER_ID).id)
    assert not set(lead_keys(places, later)) & set(lead_keys(places, repeat_done))
    assert later.metrics["delivered_skipped"] >= WANTED
