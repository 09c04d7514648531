"""SQLite writers in different processes queue on an flock beside the database file."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from prospectpro.bootstrap import open_database
from prospectpro.config import Settings
from prospectpro.store.db import Database
from prospectpro.store.schema import campaigns, discovery_jobs, job_events, rate_limits

ROOT = Path(__file__).parents[2]

SUBMITTER = textwrap.dedent(
    """
    import os, sys, time
    from prospectpro.config import Settings
    from prospectpro.domain.campaign import CampaignRequest
    from prospectpro.services.submissions import submit_campaign
    from prospectpro.store.db import Database
    from prospectpro.store.schema import LOCAL_USER_ID

    url, n, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    db = Database(url)
    settings = Settings(import_bundled_places=False)
    request = CampaignRequest(business_type="cafe", location="60.17,24.94")
    while not os.path.exists(go):  # start together, after the imports
        time.sleep(0.002)
    for _ in range(n):
        submit_campaign(db, settings, LOCAL_USER_ID, request, per_minute=None)
    print("done", flush=True)
    """
)

HOLDER = textwrap.dedent(
    """
    import sys, time
    from datetime import UTC, datetime
    from prospectpro.store.db import Database
    from prospectpro.store.schema import rate_limits

    url, hold = sys.argv[1], float(sys.argv[2])
    db = Database(url)
    with db.write() as conn:
        conn.execute(rate_limits.insert().values(key="holder", tokens=1.0, updated_at=datetime.now(UTC)))
        print("ready", flush=True)
        time.sleep(hold)
    print("released", time.time(), flush=True)
    """
)


def python(script: str, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,  # type: ignore[call-overload]
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Database, str, Path]]:
    settings = Settings(data_dir=tmp_path / "data", import_bundled_places=False)
    db = open_database(settings)
    url = settings.resolved_database_url()
    path = Path(url.removeprefix("sqlite:///"))
    yield db, url, path
    db.dispose()


def count(db: Database, table: object) -> int:
    with db.read() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()  # type: ignore[arg-type]


def read_line(proc: subprocess.Popen[str], timeout: float = 20) -> str:
    """One line of the child's stdout, failing (with its stderr) if it does not come."""
    result: list[str] = []
    stdout = proc.stdout
    assert stdout is not None
    reader = threading.Thread(target=lambda: result.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not result or not result[0]:
        proc.kill()
        raise AssertionError(f"no line from the child; stderr: {proc.communicate()[1]}")
    return result[0].strip()


def test_two_processes_writing_at_once_both_finish_with_every_row(
    store: tuple[Database, str, Path], tmp_path: Path
) -> None:
    db, url, path = store
    go = tmp_path / "go"
    per_process = 300
    procs = [python(SUBMITTER, url, str(per_process), str(go)) for _ in range(2)]
    try:
        time.sleep(0.05)
        go.touch()
        outputs = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == "done"
        assert "database is locked" not in err and "Traceback" not in err, err
    assert count(db, discovery_jobs) == 2 * per_process
    assert count(db, campaigns) == 2 * per_process
    assert count(db, job_events) == 2 * per_process
    assert path.with_name(path.name + ".lock").exists()


def test_a_writer_waits_for_another_process_and_goes_on_promptly_after_release(
    store: tuple[Database, str, Path],
) -> None:
    db, url, path = store
    hold = 0.6
    holder = python(HOLDER, url, str(hold))
    try:
        assert read_line(holder) == "ready"
        started = time.monotonic()
        # The other process holds the lock file: a non-blocking attempt is refused right now.
        fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        with db.write() as conn:
            acquired = time.monotonic()
            conn.execute(rate_limits.insert().values(key="waiter", tokens=1.0, updated_at=datetime.now(UTC)))
        done_wall = time.time()
        released_line = read_line(holder)
        assert holder.wait(20) == 0, holder.stderr.read()  # type: ignore[union-attr]
    finally:
        if holder.poll() is None:
            holder.kill()
    word, released_at = released_line.split()
    assert word == "released"
    waited = acquired - started
    assert waited >= hold / 2, f"the write did not wait for the other process ({waited:.3f} s)"
    # "released" is printed just after the holder let go, so this is at most the time to wake up.
    assert done_wall - float(released_at) < 0.3, f"{done_wall - float(released_at):.3f} s after release"
    with db.read() as conn:
        keys = set(conn.execute(select(rate_limits.c.key)).scalars())
    assert keys == {"holder", "waiter"}


def test_a_writer_killed_while_holding_the_lock_does_not_block_the_others(store: tuple[Database, str, Path]) -> None:
    db, url, _ = store
    holder = python(HOLDER, url, "60")
    try:
        assert read_line(holder) == "ready"
        finished = threading.Event()

        def write() -> None:
            with db.write() as conn:
                conn.execute(rate_limits.insert().values(key="after", tokens=1.0, updated_at=datetime.now(UTC)))
            finished.set()

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        assert not finished.wait(0.3), "wrote while another process held the lock"
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        assert finished.wait(5), "the lock outlived the process that held it"
        writer.join(5)
    finally:
        if holder.poll() is None:
            holder.kill()
    with db.read() as conn:
        keys = set(conn.execute(select(rate_limits.c.key)).scalars())
    assert keys == {"after"}  # the killed writer's transaction was rolled back


def test_two_handles_in_one_process_also_take_turns(store: tuple[Database, str, Path]) -> None:
    """flock is per open file: a second Database on the same file waits like another process would."""
    db, url, _ = store
    other = Database(url)
    try:
        entered = threading.Event()
        leave = threading.Event()

        def hold() -> None:
            with other.write():
                entered.set()
                leave.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        assert entered.wait(10)
        done = threading.Event()

        def write() -> None:
            with db.write() as conn:
                conn.execute(rate_limits.insert().values(key="second", tokens=1.0, updated_at=datetime.now(UTC)))
            done.set()

        writer = threading.Thread(target=write)
        writer.start()
        assert not done.wait(0.3)
        leave.set()
        assert done.wait(5)
        holder.join(5)
        writer.join(5)
    finally:
        other.dispose()
    assert count(db, rate_limits) == 1
