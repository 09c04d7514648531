from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from prospectpro.store import migrate
from prospectpro.store.db import Database

PG_ADMIN_URL = os.environ.get("PROSPECTPRO_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """A fresh, migrated SQLite store (no places imported)."""
    database = Database(f"sqlite:///{tmp_path / 'test.sqlite3'}")
    migrate.upgrade(database)
    yield database
    database.dispose()


def _pg_admin() -> Database | None:
    admin = Database(PG_ADMIN_URL)
    try:
        with admin.engine.connect():
            return admin
    except Exception:
        admin.dispose()
        return None


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Database]:
    admin = _pg_admin()
    if admin is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}, and CI=true requires it")
        pytest.skip("PostgreSQL is not reachable")
    yield admin
    admin.dispose()


def _fresh_pg_database(admin: Database) -> tuple[str, str]:
    name = f"pp_test_{uuid.uuid4().hex[:12]}"
    with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    return name, PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def _drop_pg_database(admin: Database, name: str) -> None:
    with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_db(pg_server: Database) -> Iterator[Database]:
    """A fresh, migrated PostgreSQL database, dropped afterwards."""
    name, url = _fresh_pg_database(pg_server)
    database = Database(url)
    try:
        migrate.upgrade(database)
        yield database
    finally:
        database.dispose()
        _drop_pg_database(pg_server, name)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest) -> Database:
    """The same test on both stores: same code, same tests."""
    return request.getfixturevalue("db" if request.param == "sqlite" else "pg_db")
