"""Push instead of poll on PostgreSQL: an enqueue wakes an idle worker of another process at once, an event
reaches another process's hub at once, and a dropped LISTEN connection reconnects and catches up."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text, update

from prospectpro.api.hub import EventHub
from prospectpro.domain.clock import utcnow
from prospectpro.domain.status import JobStatus
from prospectpro.jobs import queue
from prospectpro.jobs.kinds import JobKind
from prospectpro.jobs.model import Change, Job
from prospectpro.jobs.run import JobRun
from prospectpro.jobs.worker import Worker, WorkerConfig
from prospectpro.store import listen
from prospectpro.store.db import Database
from prospectpro.store.schema import LOCAL_USER_ID, discovery_jobs

PUSH = "push"
SLOW_POLL = 30.0  # longer than any test waits: whatever arrives in time was pushed, not polled


def enqueue(db: Database, **config: Any) -> Job:
    with db.write() as conn:
        return queue.insert_job(conn, queue.NewJob(kind=PUSH, owner_id=LOCAL_USER_ID, config=config, max_attempts=3))


def add_event(db: Database, job_id: str, kind: str = "step") -> None:
    with db.write() as conn:
        job = queue.lock_job(conn, job_id)
        queue.apply_change(conn, job, Change(kind=kind))


@pytest.fixture
def started() -> dict[str, float]:
    """Job id → when its handler began (monotonic)."""
    return {}


def recording_kind(started: dict[str, float]) -> JobKind:
    def handler(run: JobRun) -> None:
        started[run.job.id] = time.monotonic()
        run.change(Change(kind="completed", status=JobStatus.completed, stage="done", progress=100))

    return JobKind(PUSH, handler)


@pytest.fixture
def start_worker() -> Iterator[Callable[..., Worker]]:
    workers: list[Worker] = []

    def start(db: Database, kind: JobKind, **config: Any) -> Worker:
        settings = {"lease_seconds": 5.0, "poll_interval": SLOW_POLL, "safety_poll_seconds": SLOW_POLL, **config}
        worker = Worker(db, [kind], WorkerConfig(**settings))
        workers.append(worker.start())
        return worker

    yield start
    for worker in workers:
        worker.stop(timeout=10)


def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def test_sqlite_has_no_listener(db: Database) -> None:
    assert listen.acquire(db) is None
    listen.release(db, None)


def test_one_listener_per_process_hears_jobs_and_events_by_id(pg_db: Database, other_process: Database) -> None:
    first, second = listen.acquire(pg_db), listen.acquire(pg_db)
    try:
        assert first is second and first is not None  # shared by everyone in the process
        assert first.wait_connected(5)
        jobs: list[str] = []
        events: list[tuple[str, int]] = []
        first.on_job(jobs.append)
        first.on_event(lambda job_id, seq: events.append((job_id, seq)))
        job = enqueue(other_process)
        add_event(other_process, job.id)
        wait_for(lambda: len(events) >= 2)
        assert jobs == [job.id]  # a progress event is no wake-up for workers
        assert events == [(job.id, 1), (job.id, 2)]  # ids only, in commit order
    finally:
        listen.release(pg_db, first)
        listen.release(pg_db, second)
    assert first is not None and not first.connected.is_set()  # the last user gone: closed


def test_an_enqueue_in_another_process_wakes_an_idle_worker_at_once(
    pg_db: Database, other_process: Database, start_worker: Callable[..., Worker], started: dict[str, float]
) -> None:
    worker = start_worker(pg_db, recording_kind(started))
    assert worker._listener is not None and worker._listener.wait_connected(5)
    time.sleep(0.2)  # idle, asleep on the (slow) poll
    for _ in range(3):
        submitted = time.monotonic()
        job = enqueue(other_process)
        wait_for(lambda job=job: job.id in started, timeout=5)
        assert started[job.id] - submitted < 1.0  # the poll is 30 s: this was the NOTIFY
        wait_for(lambda job=job: queue.get_job(pg_db, job.id).status == JobStatus.completed)


def test_a_retry_starts_when_its_time_comes_without_a_notification(
    pg_db: Database, start_worker: Callable[..., Worker], started: dict[str, float]
) -> None:
    job = enqueue(pg_db)
    # Due in 0.4 s; written with the trigger's condition false (no status change) — only time makes it claimable.
    with pg_db.write() as conn:
        conn.execute(
            update(discovery_jobs)
            .where(discovery_jobs.c.id == job.id)
            .values(run_after=utcnow() + timedelta(seconds=0.4))
        )
    begun = time.monotonic()
    start_worker(pg_db, recording_kind(started), safety_poll_seconds=SLOW_POLL)
    wait_for(lambda: job.id in started, timeout=5)
    assert 0.3 < started[job.id] - begun < 2.0  # the worker slept until the known run_after, not the 30 s poll


def test_the_hub_of_another_process_gets_events_at_once(pg_db: Database, other_process: Database) -> None:
    job = enqueue(other_process)

    async def scenario() -> list[float]:
        hub = EventHub(pg_db, poll_interval=SLOW_POLL, safety_poll_interval=SLOW_POLL)
        await hub.start()
        try:
            assert hub._listener is not None
            await asyncio.to_thread(hub._listener.wait_connected, 5)
            sub = await hub.subscribe(job.id, LOCAL_USER_ID, after=0, head=1)
            assert (await asyncio.wait_for(sub.queue.get(), 2)).seq == 1
            delays = []
            for seq in (2, 3, 4):
                written = time.monotonic()
                await asyncio.to_thread(add_event, other_process, job.id)
                frame = await asyncio.wait_for(sub.queue.get(), 2)
                delays.append(time.monotonic() - written)
                assert frame.seq == seq
            hub.unsubscribe(sub, LOCAL_USER_ID)
            return delays
        finally:
            await hub.stop()

    delays = asyncio.run(scenario())
    assert max(delays) < 1.0  # the hub's poll is 30 s: these were pushed


def _drop_listen_connections(db: Database) -> int:
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        return len(
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'prospectpro-listen' AND datname = current_database()"
                )
            ).all()
        )


def test_a_dropped_listen_connection_reconnects_and_the_hub_catches_up(
    pg_db: Database, other_process: Database
) -> None:
    job = enqueue(other_process)

    async def scenario() -> list[int]:
        hub = EventHub(pg_db, poll_interval=SLOW_POLL, safety_poll_interval=SLOW_POLL)
        await hub.start()
        try:
            listener = hub._listener
            assert listener is not None
            await asyncio.to_thread(listener.wait_connected, 5)
            sub = await hub.subscribe(job.id, LOCAL_USER_ID, after=0, head=1)
            seen = [(await asyncio.wait_for(sub.queue.get(), 2)).seq]
            assert await asyncio.to_thread(_drop_listen_connections, pg_db) == 1
            # Written while nobody listens (the NOTIFYs go nowhere): the reconnect reads them from the log.
            for _ in range(3):
                await asyncio.to_thread(add_event, other_process, job.id)
            await asyncio.to_thread(wait_for, lambda: listener.connects >= 2)
            while len(seen) < 4:
                seen.append((await asyncio.wait_for(sub.queue.get(), 3)).seq)
            await asyncio.to_thread(add_event, other_process, job.id)  # and it listens again
            seen.append((await asyncio.wait_for(sub.queue.get(), 2)).seq)
            await asyncio.sleep(0.1)
            assert sub.queue.empty()  # nothing twice
            hub.unsubscribe(sub, LOCAL_USER_ID)
            return seen
        finally:
            await hub.stop()

    assert asyncio.run(scenario()) == [1, 2, 3, 4, 5]


def test_a_worker_whose_listen_connection_dropped_still_takes_new_work(
    pg_db: Database, other_process: Database, start_worker: Callable[..., Worker], started: dict[str, float]
) -> None:
    worker = start_worker(pg_db, recording_kind(started))
    listener = worker._listener
    assert listener is not None and listener.wait_connected(5)
    assert _drop_listen_connections(pg_db) == 1
    wait_for(lambda: listener.connects >= 2)
    job = enqueue(other_process)
    wait_for(lambda: job.id in started, timeout=3)


def test_a_failing_subscriber_does_not_silence_the_others(pg_db: Database, other_process: Database) -> None:
    listener = listen.acquire(pg_db)
    assert listener is not None
    try:
        heard = threading.Event()

        def broken(_job_id: str) -> None:
            raise RuntimeError("boom")

        listener.on_job(broken)
        listener.on_job(lambda _job_id: heard.set())
        listener.on_event(lambda _job_id, _seq: heard.set())
        assert listener.wait_connected(5)
        enqueue(other_process)
        assert heard.wait(3)
        assert listener.connects == 1  # the subscriber's error did not cost the connection
    finally:
        listen.release(pg_db, listener)


def test_following_a_job_sees_another_processs_events_without_polling(pg_db: Database, other_process: Database) -> None:
    from prospectpro.jobs.events import follow_events

    job = enqueue(other_process)
    seen: list[tuple[int, float]] = []

    def follow() -> None:
        for event in follow_events(pg_db, job.id, poll_interval=SLOW_POLL):
            seen.append((event.seq, time.monotonic()))

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    wait_for(lambda: len(seen) == 1)
    time.sleep(0.3)  # the follower is asleep on its 30 s poll, and listening
    written = time.monotonic()
    with other_process.write() as conn:
        locked = queue.lock_job(conn, job.id)
        queue.apply_change(conn, locked, Change(kind="completed", status=JobStatus.completed, progress=100))
    reader.join(5)
    assert not reader.is_alive() and [seq for seq, _ in seen] == [1, 2]
    assert seen[1][1] - written < 1.0


def test_doctor_on_postgres_checks_listen_version_and_connections(pg_db: Database) -> None:
    from prospectpro.config import Settings
    from prospectpro.ops import OK, doctor

    settings = Settings(database_url=pg_db.engine.url.render_as_string(False), import_bundled_places=False)
    checks = {check.name: check for check in doctor(settings, pg_db)}
    assert checks["listen/notify"].status == OK and "arrived in" in checks["listen/notify"].detail
    assert checks["postgresql"].detail.startswith("server 1")
    assert checks["connections"].status == OK and " in use" in checks["connections"].detail
    assert checks["database role"].status == "warn"  # the tests connect as the postgres superuser


def test_the_probe_fails_clearly_when_nothing_arrives(pg_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    # A sender that sends nothing: as if the notification never came.
    monkeypatch.setattr(pg_db.engine, "connect", lambda: _Silent())
    with pytest.raises(TimeoutError):
        listen.probe(pg_db, timeout=1.0)


class _Silent:
    def execution_options(self, **_: object) -> _Silent:
        return self

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def exec_driver_sql(self, _sql: str) -> None:
        return None
