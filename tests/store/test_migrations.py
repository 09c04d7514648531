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

