"""0006 upgrades a 0005 store with data in it, and downgrades back to 0005's schema (both stores)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import insert, inspect, select

from prospectpro.store import migrate
from prospectpro.store.db import Database
from prospectpro.store.schema import LOCAL_USER_ID, campaigns, leads, users
from tests.conftest import _drop_pg_database, _fresh_pg_database


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


def _downgrade(db: Database, revision: str) -> None:
    cfg = migrate._config()
    with db.write(foreign_keys=False) as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def test_0006_keeps_leads_and_users_and_downgrades(unmigrated: Database) -> None:
    migrate.upgrade(unmigrated, "0005")
    t0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
    cid = str(uuid.uuid4())
    with unmigrated.write() as conn:
        conn.execute(
            insert(campaigns).values(
                id=cid, owner_id=LOCAL_USER_ID, business_type="cafe", location="Helsinki", max_results=5,
                budget_limit=Decimal("10"), min_score=50, tier="base", include_delivered=False, status="completed",
                results_count=1, total_cost=Decimal("0"), created_at=t0, updated_at=t0,
            )
        )
        conn.execute(
            insert(leads).values(
                campaign_id=cid, owner_id=LOCAL_USER_ID, dedup_key="a", business_name="A", confidence_score=80,
                score_breakdown={}, sources=["osm:node/1"], cost=Decimal("0"), created_at=t0,
            )
        )
    migrate.upgrade(unmigrated)
    with unmigrated.read() as conn:
        row = conn.execute(select(leads)).one()
        assert (row.business_name, row.rating, row.field_sources, row.google_expires_at) == ("A", None, None, None)
        assert conn.execute(select(users.c.monthly_budget).where(users.c.id == LOCAL_USER_ID)).scalar_one() is None
        tables = set(inspect(conn).get_table_names())
    assert {"api_calls", "provider_state"} <= tables

    _downgrade(unmigrated, "0005")
    assert migrate.current_revision(unmigrated) == "0005"
    with unmigrated.read() as conn:
        inspector = inspect(conn)
        assert "provider_state" not in inspector.get_table_names()
        assert "request_key" in {c["name"] for c in inspector.get_columns("api_calls")}
        assert "rating" not in {c["name"] for c in inspector.get_columns("leads")}
        assert conn.exec_driver_sql("SELECT business_name FROM leads").scalar_one() == "A"
    migrate.upgrade(unmigrated)  # and up again
    assert migrate.is_current(unmigrated)
