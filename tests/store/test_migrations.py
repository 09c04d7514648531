"""The migrations build exactly the schema that store/schema.py describes, and 0004 carries the old deliveries over."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from prospectpro.store import migrate
from prospectpro.store.db import Database
from prospectpro.store.schema import LOCAL_USER_ID, campaigns, delivered_businesses, leads, metadata, users
from tests.conftest import _drop_pg_database, _fresh_pg_database


def test_the_migrated_schema_is_the_one_the_tables_describe(any_db: Database) -> None:
    with any_db.read() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
    assert migrate.is_current(any_db)


@pytest.fixture(params=["sqlite", "postgresql"])
def unmigrated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'old.sqlite3'}")
        yield database
        database.dispose()
        return
    server = request.getfixturevalue("pg_server")
    name, url = _fresh_pg_database(server)
    database = Database(url)
    try:
        yield database
    finally:
        database.dispose()
        _drop_pg_database(server, name)


def campaign_row(owner_id: str, created_at: datetime) -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "owner_id": owner_id,
        "business_type": "cafe",
        "location": "Helsinki",
        "max_results": 5,
        "budget_limit": Decimal("10"),
        "min_score": 50,
        "tier": "base",
        "include_delivered": False,
        "status": "completed",
        "results_count": 0,
        "total_cost": Decimal("0"),
        "created_at": created_at,
        "updated_at": created_at,
    }


def lead(campaign: dict[str, object], key: str, created_at: datetime) -> dict[str, object]:
    return {
        "campaign_id": campaign["id"],
        "owner_id": campaign["owner_id"],
        "dedup_key": key,
        "business_name": key,
        "confidence_score": 80,
        "score_breakdown": {},
        "sources": [],
        "cost": Decimal("0"),
        "created_at": created_at,
    }


def test_0004_records_every_lead_delivered_before_once_per_owner(unmigrated: Database) -> None:
    migrate.upgrade(unmigrated, "0003")
    t0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
    other = str(uuid.uuid4())
    first = campaign_row(LOCAL_USER_ID, t0)
    second = campaign_row(LOCAL_USER_ID, t0 + timedelta(hours=1))  # an include_delivered campaign: a repeat
    theirs = campaign_row(other, t0)
    with unmigrated.write() as conn:
        conn.execute(insert(users).values(id=other, name="other", kind="user", created_at=t0))
        conn.execute(insert(campaigns), [first, second, theirs])
        conn.execute(
            insert(leads),
            [
                lead(first, "a", t0),
                lead(first, "b", t0),
                lead(second, "a", t0 + timedelta(hours=1)),
                lead(second, "c", t0 + timedelta(hours=1)),
                lead(theirs, "a", t0 + timedelta(minutes=5)),
            ],
        )
    migrate.upgrade(unmigrated)
    with unmigrated.read() as conn:
        found = {
            (r.owner_id, r.fingerprint): (r.campaign_id, r.delivered_at)
            for r in conn.execute(select(delivered_businesses))
        }
    assert found == {
        (LOCAL_USER_ID, "a"): (first["id"], t0),  # the campaign that delivered it first
        (LOCAL_USER_ID, "b"): (first["id"], t0),
        (LOCAL_USER_ID, "c"): (second["id"], t0 + timedelta(hours=1)),
        (other, "a"): (theirs["id"], t0 + timedelta(minutes=5)),
    }



# -- 0005: job kinds, on a store with jobs in it ----------------------------


def old_job(campaign: dict[str, object], status: str, at: datetime, **fields: object) -> dict[str, object]:
    """A discovery_jobs row as 0004 stored it: no kind, every job a campaign's."""
    return {
        "id": str(uuid.uuid4()),
        "campaign_id": campaign["id"],
        "owner_id": campaign["owner_id"],
        "status": status,
        "progress": 0,
        "current_stage": "queued",
        "config": {},
        "metrics": {},
        "checkpoint": {},
        "error": None,
        "attempts": 0,
        "max_attempts": 3,
        "run_after": at,
        "lease_owner": None,
        "lease_token": 0,
        "lease_expires_at": None,
        "cancel_requested": False,
        "idempotency_key": None,
        "request_hash": None,
        "event_seq": 1,
        "created_at": at,
        "started_at": None,
        "completed_at": None,
        "updated_at": at,
        **fields,
    }


def event(job: dict[str, object], seq: int, kind: str, at: datetime) -> dict[str, object]:
    return {"job_id": job["id"], "seq": seq, "kind": kind, "data": {"status": job["status"]}, "created_at": at}


def test_0005_upgrades_a_store_with_jobs_in_place_and_its_pending_jobs_still_run(unmigrated: Database) -> None:
    from prospectpro.domain.campaign import CampaignRequest
    from prospectpro.domain.status import JobStatus
    from prospectpro.jobs.queue import get_job, list_events
    from prospectpro.jobs.worker import Worker, WorkerConfig
    from prospectpro.pipeline.kind import campaign_kind
    from prospectpro.places.importer import ensure_bundled_places
    from prospectpro.services.campaigns import list_leads, prepare_campaign
    from prospectpro.store.schema import discovery_jobs, job_candidates, job_events, notifications
    from tests.pipeline.conftest import make_pipeline, wait_until_done

    db = unmigrated
    migrate.upgrade(db, "0004")
    ensure_bundled_places(db)
    prepared = prepare_campaign(db, CampaignRequest(business_type="cafe", location="Helsinki", max_results=5))
    config = {  # as 0004's code wrote a campaign's config
        "business_type": prepared.business_type.name,
        "business_type_label": prepared.business_type.label,
        "tags": list(prepared.business_type.tags),
        "location": "Helsinki",
        "area": prepared.area.to_dict(),
        "max_results": 5,
        "budget_limit": "5",
        "min_score": 0,
        "tier": "base",
        "include_delivered": False,
        "notify": {"url": "http://127.0.0.1:9/done", "secret": "s" * 64},
    }
    t0 = datetime.now(UTC) - timedelta(hours=1)
    finished_campaign = campaign_row(LOCAL_USER_ID, t0)
    waiting_campaign = {**campaign_row(LOCAL_USER_ID, t0), "status": "pending"}
    finished = old_job(
        finished_campaign, "completed", t0, progress=100, current_stage="finished", config=config, event_seq=3,
        attempts=1, lease_token=1, checkpoint={"initializing": "done"}, metrics={"leads": 1},
        started_at=t0, completed_at=t0, updated_at=t0,
    )
    pending = old_job(waiting_campaign, "pending", t0, config=config)
    with db.write() as conn:
        conn.execute(insert(campaigns), [finished_campaign, waiting_campaign])
        conn.execute(insert(discovery_jobs), [finished, pending])
        conn.execute(
            insert(job_events),
            [event(finished, 1, "created", t0), event(finished, 2, "claimed", t0), event(finished, 3, "completed", t0),
             event(pending, 1, "created", t0)],
        )
        conn.execute(
            insert(job_candidates).values(
                job_id=finished["id"], source="osm", source_id="n1", position=0, fingerprint="cafe a",
                business={"name": "Cafe A"}, qualified=True, selected=True, enrich_state="done", cost=Decimal("0"),
            )
        )
        conn.execute(insert(leads), [lead(finished_campaign, "cafe a", t0)])
        conn.execute(
            insert(notifications).values(
                job_id=finished["id"], url="http://127.0.0.1:9/done", secret="s" * 64, status="delivered",
                attempts=1, next_attempt_at=t0, created_at=t0, delivered_at=t0,
            )
        )

    migrate.upgrade(db)

    assert migrate.is_current(db)
    with db.read() as conn:
        jobs = {r.id: (r.kind, r.campaign_id, r.status, r.event_seq) for r in conn.execute(select(discovery_jobs))}
        assert jobs == {
            finished["id"]: ("campaign", finished_campaign["id"], "completed", 3),
            pending["id"]: ("campaign", waiting_campaign["id"], "pending", 1),
        }
        assert conn.execute(select(job_events.c.job_id, job_events.c.seq).order_by(job_events.c.id)).all() == [
            (finished["id"], 1), (finished["id"], 2), (finished["id"], 3), (pending["id"], 1)
        ]
        assert conn.execute(select(job_candidates.c.job_id)).scalars().all() == [finished["id"]]
        assert conn.execute(select(notifications.c.job_id, notifications.c.status)).all() == [(finished["id"], "delivered")]
    assert get_job(db, finished["id"]).to_public()["stage_label"] == "Completed"
    assert len(list_leads(db, str(finished_campaign["id"]), LOCAL_USER_ID)[0]) == 1
    # The upgrade enforced no foreign keys while it rebuilt the table; every later transaction does again.
    with pytest.raises(IntegrityError), db.write() as conn:
        conn.execute(insert(job_events), [{**event(pending, 9, "x", t0), "job_id": str(uuid.uuid4())}])

    worker = Worker(db, [campaign_kind(make_pipeline(db))], WorkerConfig(lease_seconds=5, poll_interval=0.05)).start()
    try:
        done = wait_until_done(db, str(pending["id"]), timeout=60)
    finally:
        worker.stop(timeout=10)
    assert done.status == JobStatus.completed and done.kind == "campaign"
    assert [e.seq for e in list_events(db, done.id)] == list(range(1, done.event_seq + 1))
    assert len(list_leads(db, str(waiting_campaign["id"]), LOCAL_USER_ID)[0]) == 5
    with db.read() as conn:
        assert conn.execute(select(campaigns.c.status).where(campaigns.c.id == waiting_campaign["id"])).scalar() == "completed"
        owed = conn.execute(select(notifications.c.job_id).where(notifications.c.job_id == done.id)).scalars().all()
    assert owed == [done.id]  # the campaign kind's hook owes the webhook of a job enqueued before kinds
