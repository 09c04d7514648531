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
# A connection to anything but this machine fails at once (instead of hanging
# until a timeout on a machine without a route), and so does a lookup of a name
# that is not this machine's: the simulators and the databases live on loopback.
import ipaddress  # noqa: E402
import socket  # noqa: E402

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _is_local(host: object) -> bool:
    if not isinstance(host, str):
        return True
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _refuse_remote(sock: socket.socket, address: object) -> None:
    family_ok = sock.family in (socket.AF_INET, socket.AF_INET6)
    if family_ok and isinstance(address, tuple) and not _is_local(address[0]):
        raise ConnectionRefusedError(f"tests may not reach the internet (connect to {address[0]!r})")


def _guarded_connect(self: socket.socket, address: object) -> None:
    _refuse_remote(self, address)
    return _real_connect(self, address)  # type: ignore[arg-type]


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    _refuse_remote(self, address)
    return _real_connect_ex(self, address)  # type: ignore[arg-type]


def _guarded_getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
    name = host.decode() if isinstance(host, bytes) else host
    if name is not None and not _is_local(name):
        try:
            ipaddress.ip_address(str(name))  # a literal address resolves to itself; connect() checks it
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, f"tests may not resolve internet names ({name!r})") from None
    return _real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
socket.getaddrinfo = _guarded_getaddrinfo  # type: ignore[assignment]


@pytest.fixture
def sim() -> Iterator[object]:
    """The external-API simulator on 127.0.0.1 (tests.sim.server.Simulator), routes installed by each test."""
    from tests.sim.server import Simulator

    with Simulator() as simulator:
        yield simulator
