"""A frozen SQLite writer: the others give up within the timeout, and /healthz names it (issue 7, item 4)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from prospectpro.api.ops import health
from prospectpro.bootstrap import open_database
from prospectpro.config import Settings
from prospectpro.store.db import Database, WriteLockTimeout
from prospectpro.store.schema import rate_limits
from tests.api.conftest import start_server
from tests.api.helpers import new_api_key, submit
from tests.store.test_file_lock import HOLDER, python, read_line

TIMEOUT = 0.5
CAFES = {"business_type": "cafe", "location": "60.17,24.94"}  # coordinates: no places import needed


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    settings = Settings(data_dir=tmp_path / "data", import_bundled_places=False, write_lock_timeout=TIMEOUT)
    database = open_database(settings)
    yield database
    database.dispose()


@pytest.fixture
def frozen_holder(db: Database) -> Iterator[subprocess.Popen[str]]:
    """Another process inside a write transaction, stopped (SIGSTOP) while it holds the lock."""
    holder = python(HOLDER, db.url, "0.2")
    try:
        assert read_line(holder) == "ready"
        holder.send_signal(signal.SIGSTOP)
        yield holder
    finally:
        if holder.poll() is None:
            holder.send_signal(signal.SIGKILL)
            holder.wait(10)


def insert(db: Database, key: str) -> None:
    with db.write() as conn:
        conn.execute(rate_limits.insert().values(key=key, tokens=1.0, updated_at=datetime.now(UTC)))


def keys(db: Database) -> set[str]:
    with db.read() as conn:
        return set(conn.execute(select(rate_limits.c.key)).scalars())


def test_a_write_gives_up_on_a_frozen_writer_and_health_names_it(
    db: Database, frozen_holder: subprocess.Popen[str]
) -> None:
    found = db.write_lock_holder()
    assert found is not None and found.pid == frozen_holder.pid
    started = time.monotonic()
    with pytest.raises(WriteLockTimeout) as raised:
        insert(db, "waiter")
    waited = time.monotonic() - started
    assert TIMEOUT * 0.9 <= waited < TIMEOUT + 1.0, f"gave up after {waited:.2f} s"
    # The API's handler for a locked or unreachable database (503, Retry-After) catches it, and
    # it reads like SQLite's own busy timeout, which a worker waits out as a database outage.
    assert isinstance(raised.value, OperationalError) and isinstance(raised.value.orig, sqlite3.OperationalError)
    assert str(raised.value.orig).startswith("database is locked: ")
    assert f"pid {frozen_holder.pid} has held the write lock" in str(raised.value.orig)

    code, body = health(db, lease_seconds=30)
    assert code == 200 and body["status"] == "degraded"
    assert body["writer"].startswith(f"pid {frozen_holder.pid} has held the write lock for ")

    frozen_holder.send_signal(signal.SIGCONT)  # it finishes its transaction and lets go
    assert read_line(frozen_holder).startswith("released")
    assert frozen_holder.wait(10) == 0
    insert(db, "after")
    assert keys(db) == {"holder", "after"}
    assert db.write_lock_holder() is None and db.stalled_writer() is None
    assert "writer" not in health(db, lease_seconds=30)[1]


def test_after_the_frozen_writer_is_killed_writes_work_and_health_forgets_it(
    db: Database, frozen_holder: subprocess.Popen[str]
) -> None:
    time.sleep(TIMEOUT)
    assert (db.stalled_writer() or "").startswith(f"pid {frozen_holder.pid} has held the write lock for ")
    frozen_holder.send_signal(signal.SIGKILL)
    frozen_holder.wait(10)
    # Its record stays in the lock file, but the kernel released its lock: nobody holds it.
    assert db.write_lock_holder() is None and db.stalled_writer() is None
    insert(db, "after")
    assert keys(db) == {"after"}  # the killed writer's transaction was rolled back


def test_a_writer_that_is_merely_slow_is_not_reported(db: Database) -> None:
    holder = python(HOLDER, db.url, "60")
    try:
        assert read_line(holder) == "ready"
        found = db.write_lock_holder()
        assert found is not None and found.pid == holder.pid and found.held_for() < TIMEOUT
        assert db.stalled_writer() is None
    finally:
        holder.kill()
        holder.wait(10)


def test_the_wait_for_another_thread_of_this_process_is_bounded_too(db: Database) -> None:
    inside, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with db.write():
            inside.set()
            leave.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert inside.wait(10)
        started = time.monotonic()
        with pytest.raises(WriteLockTimeout):
            insert(db, "waiter")
        assert time.monotonic() - started < TIMEOUT + 1.0
        # The holder is this very process: the lock file says so, for /healthz.
        found = db.write_lock_holder()
        assert found is not None and found.pid == os.getpid()
    finally:
        leave.set()
        holder.join(10)
    insert(db, "after")
    assert keys(db) == {"after"}


def test_an_uncontended_write_lock_costs_microseconds(db: Database) -> None:
    """The bounded lock keeps the fast path: one non-blocking flock and two small pwrites."""
    rounds = 2000
    started = time.perf_counter()
    for _ in range(rounds):
        db._lock_for_writing()
        db._unlock_after_writing()
    per_lock = (time.perf_counter() - started) / rounds
    assert per_lock < 200e-6, f"{per_lock * 1e6:.0f} µs per lock"


def test_the_api_answers_503_with_retry_after_while_a_frozen_process_holds_the_lock(tmp_path: Path) -> None:
    server = start_server(tmp_path, workers=0, write_lock_timeout=TIMEOUT, import_bundled_places=False)
    holder = None
    try:
        key = new_api_key(server.db)
        holder = python(HOLDER, server.db.url, "0.2")
        assert read_line(holder) == "ready"
        holder.send_signal(signal.SIGSTOP)
        time.sleep(TIMEOUT)
        with server.client(key) as client:
            started = time.monotonic()
            response = client.post("/api/v1/campaigns", json=CAFES)
            assert time.monotonic() - started < TIMEOUT + 2.0
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"] == "2"
            assert response.json()["error"]["code"] == "unavailable"
            health_body = client.get("/healthz").json()
            assert health_body["status"] == "degraded"
            assert health_body["writer"].startswith(f"pid {holder.pid} has held the write lock for ")

            holder.send_signal(signal.SIGKILL)
            holder.wait(10)
            assert submit(client, CAFES)["status"] == "pending"
            assert "writer" not in client.get("/healthz").json()
    finally:
        if holder is not None and holder.poll() is None:
            holder.kill()
            holder.wait(10)
        server.stop()
