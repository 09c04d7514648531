"""PostgreSQL restarts while jobs run and SSE clients watch (issue 13).

Two API servers and two workers, each with its own database handle (its own
pool, notifier and LISTEN connection, as separate processes have), against
one PostgreSQL; the server is stopped and started again (``pg_ctlcluster``)
under them. Everything reconnects by itself: every job completes, each client
ends with every event of its job exactly once (reconnecting with
Last-Event-ID where its stream broke), and while the database is down the API
answers 503 with Retry-After, never 500.

Every other test uses the same PostgreSQL server: this one waits until it
accepts connections again before it ends (pytest runs tests serially here).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from prospectpro.domain.status import JobStatus
from prospectpro.jobs import queue
from prospectpro.jobs.kinds import JobKind
from prospectpro.jobs.model import Change, Job
from prospectpro.jobs.run import JobRun
from prospectpro.jobs.worker import Worker, WorkerConfig
from prospectpro.services.users import create_user
from prospectpro.store.db import Database
from tests.api.conftest import LiveServer, start_server
from tests.api.helpers import SSEEvent, iter_sse

TICKS = "ticks"
STEPS = 25
STEP_SECONDS = 0.08  # a job takes ~2 s: it runs across the outage


def ticks(run: JobRun) -> None:
    start = int(run.job.checkpoint.get("step", 0))
    for step in range(start, STEPS):
        time.sleep(STEP_SECONDS)
        run.checkpoint()
        run.change(
            Change(kind="tick", stage="ticking", progress=int(100 * step / STEPS), checkpoint={"step": step + 1})
        )
    run.change(Change(kind="completed", status=JobStatus.completed, stage="done", progress=100))


def pg_version() -> str:
    versions = sorted(os.listdir("/etc/postgresql"), key=lambda v: [int(p) for p in v.split(".") if p.isdigit()])
    assert versions, "no PostgreSQL cluster in /etc/postgresql"
    return versions[-1]


def pg_ctl(action: str) -> None:
    subprocess.run(["pg_ctlcluster", pg_version(), "main", action], check=True, capture_output=True, timeout=60)


def wait_accepting(db: Database, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def server_comes_back(pg_server: Database) -> Iterator[None]:
    """Whatever happens in the test, the shared server is running and accepting connections after it."""
    yield
    result = subprocess.run(["pg_ctlcluster", pg_version(), "main", "status"], capture_output=True)
    if result.returncode != 0:
        pg_ctl("start")
    wait_accepting(pg_server)


class Watcher(threading.Thread):
    """An SSE client that follows one job to its end, reconnecting with Last-Event-ID whenever the stream breaks."""

    def __init__(self, server: LiveServer, token: str, job_id: str, read_timeout: float = 20.0) -> None:
        super().__init__(daemon=True)
        self.server, self.token, self.job_id = server, token, job_id
        self.read_timeout = read_timeout  # a short one breaks the stream while the job is silent (the outage)
        self.seqs: list[int] = []
        self.reconnects = 0
        self.statuses: list[int] = []
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self) -> None:
        try:
            deadline = time.monotonic() + 60
            while not self.done.is_set() and time.monotonic() < deadline:
                headers = {"Authorization": f"Bearer {self.token}"}
                if self.seqs:
                    headers["Last-Event-ID"] = str(self.seqs[-1])
                try:
                    self._follow(headers)
                except httpx.HTTPError:
                    pass  # the stream broke: reconnect from the last event seen
                if not self.done.is_set():
                    self.reconnects += 1
                    time.sleep(0.1)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _follow(self, headers: dict[str, str]) -> None:
        url = f"{self.server.url}/api/v1/jobs/{self.job_id}/events"
        with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(10, read=self.read_timeout)) as response:
            self.statuses.append(response.status_code)
            if response.status_code == 204:  # reconnected after the end: nothing more will come
                self.done.set()
                return
            if response.status_code != 200:
                response.read()
                return
            for item in iter_sse(response):
                if isinstance(item, SSEEvent) and item.event != "snapshot":
                    data = item.json()
                    assert item.id == str(data["seq"])
                    self.seqs.append(data["seq"])
                    if data.get("status") in {s.value for s in JobStatus if s.terminal}:
                        self.done.set()
                        return


def enqueue(db: Database, owner_id: str) -> Job:
    with db.write() as conn:
        return queue.insert_job(conn, queue.NewJob(kind=TICKS, owner_id=owner_id, config={}, max_attempts=3))


@pytest.mark.postgres
def test_a_postgres_restart_is_survived_by_workers_streams_and_the_api(
    pg_db: Database, tmp_path: Path, server_comes_back: None
) -> None:
    url = pg_db.engine.url.render_as_string(False)
    principal, token = create_user(pg_db, "restart")
    servers = [start_server(tmp_path / name, workers=0, database_url=url) for name in ("a", "b")]
    worker_dbs = [Database(url) for _ in range(2)]
    config = WorkerConfig(lease_seconds=6.0, poll_interval=0.05, concurrency=2)
    workers = [Worker(db, [JobKind(TICKS, ticks)], config).start() for db in worker_dbs]
    try:
        jobs = [enqueue(pg_db, principal.user_id) for _ in range(4)]
        # The first client's stream breaks during the outage; it reconnects with Last-Event-ID (503s until the
        # database is back). The others' streams stay open across it.
        watchers = [Watcher(servers[i % 2], token, job.id, 0.5 if i == 0 else 20.0) for i, job in enumerate(jobs)]
        for watcher in watchers:
            watcher.start()
        deadline = time.monotonic() + 20
        while not all(len(w.seqs) >= 3 for w in watchers):  # the jobs are running and the clients watching
            assert time.monotonic() < deadline, [w.seqs for w in watchers]
            time.sleep(0.02)

        pg_ctl("stop")
        try:
            down: list[httpx.Response] = []
            with httpx.Client(timeout=10, headers={"Authorization": f"Bearer {token}"}) as client:
                for server in servers:
                    for _ in range(2):
                        down.append(client.get(f"{server.url}/api/v1/jobs/{jobs[0].id}"))
            deadline = time.monotonic() + 10
            while 503 not in watchers[0].statuses:  # its reconnect was refused cleanly while the database was down
                assert time.monotonic() < deadline, watchers[0].statuses
                time.sleep(0.05)
        finally:
            pg_ctl("start")
        for response in down:
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"]
        wait_accepting(pg_db)

        with httpx.Client(timeout=10, headers={"Authorization": f"Bearer {token}"}) as client:
            after: list[int] = []
            for _ in range(5):  # the first requests after the restart meet the pool's dead connections
                for server in servers:
                    after.append(client.get(f"{server.url}/api/v1/jobs/{jobs[0].id}").status_code)
        assert set(after) <= {200, 503} and after[-2:] == [200, 200], after

        for watcher in watchers:
            watcher.join(40)
            assert watcher.error is None, watcher.error
            assert watcher.done.is_set(), (watcher.seqs, watcher.statuses)
            assert 500 not in watcher.statuses and set(watcher.statuses) <= {200, 204, 503}, watcher.statuses
        assert watchers[0].reconnects >= 2 and watchers[0].statuses[-1] in (200, 204)
        for job, watcher in zip(jobs, watchers, strict=True):
            final = queue.get_job(pg_db, job.id)
            assert final.status == JobStatus.completed, (final.status, final.error)
            log = [e.seq for e in queue.list_events(pg_db, job.id, limit=10_000)]
            assert log == list(range(1, final.event_seq + 1))
            # Every event of its job exactly once, in order (the stream starts after the snapshot: seq 1 on).
            assert watcher.seqs == log, (watcher.seqs, log)
        # Everyone's LISTEN connection came back by itself (each had its first, then at least one more).
        listeners = [w._listener for w in workers] + [s.server.config.app.state.hub._listener for s in servers]
        for listener in listeners:
            assert listener is not None and listener.connected.is_set() and listener.connects >= 2
    finally:
        for worker in workers:
            worker.stop(timeout=10)
        for server in servers:
            server.stop()
        for db in worker_dbs:
            db.dispose()
