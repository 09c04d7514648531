from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from prospectpro.store import migrate
from prospectpro.store.db import Database

# Live OpenStreetMap (Nominatim, Overpass) is off unless a test points it at its simulator
# (tests/live_osm): no test waits on, or is refused by, the public instances; subprocesses inherit it.
os.environ.setdefault("PROSPECTPRO_NOMINATIM_BASE_URL", "")
os.environ.setdefault("PROSPECTPRO_OVERPASS_BASE_URL", "")
# The browser must not fetch map tiles from the internet either (tests of tiles set their own URL).
os.environ.setdefault("PROSPECTPRO_MAP_TILES_URL", "")

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


# -- no test reaches the internet -------------------------------------------------------
# The guard lives in tests/no_internet/sitecustomize.py: installed here for this
# process, and put on PYTHONPATH so every Python process a test starts (workers,
# servers, the CLI) installs it too when it starts.
_GUARD_DIR = str(Path(__file__).parent / "no_internet")
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_GUARD_DIR, os.environ.get("PYTHONPATH", "")) if p)
os.environ["PROSPECTPRO_TESTS_NO_INTERNET"] = "1"
import tests.no_internet.sitecustomize  # noqa: E402,F401  (installs the guard in this process)


@pytest.fixture
def sim() -> Iterator[object]:
    """The external-API simulator on 127.0.0.1 (tests.sim.server.Simulator), routes installed by each test."""
    from tests.sim.server import Simulator

    with Simulator() as simulator:
        yield simulator
