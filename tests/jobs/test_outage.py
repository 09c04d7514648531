"""The database goes away under a running job: the worker keeps the job, waits the
outage out within its lease, and charges the job no attempt for it."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from prospectpro.config import Settings
from prospectpro.domain.status import JobStatus
from prospectpro.jobs import queue
from prospectpro.jobs.kinds import JobKind
from prospectpro.jobs.model import Change, DatabaseUnavailable, Job
from prospectpro.jobs.run import JobRun, database_outage
from prospectpro.jobs.worker import MAX_STALLED_RESUMES, Worker, WorkerConfig
from prospectpro.pipeline.kind import CAMPAIGN, campaign_kind
from prospectpro.places.importer import ensure_bundled_places
from prospectpro.services.campaigns import list_leads
from prospectpro.store.db import Database
from prospectpro.store.schema import LOCAL_USER_ID
from tests.jobs.test_queue import events_of
from tests.pipeline.conftest import make_pipeline, submit, wait_until_done
from tests.plugins import SlowEnricher
from tests.support import make_job

NOT_THE_JOBS_FAULT = {"retry_scheduled", "failed", "taken_over", "released"}


def locked() -> OperationalError:
    return OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked"))


class WriteOutage:
    """Every write transaction of ``db`` fails while the outage lasts, as SQLite's do when
    another process holds its lock."""

    def __init__(self, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
        self.until = 0.0
        self.refused = 0
        original = db.write

        @contextmanager
        def write() -> Iterator[Connection]:
            if time.monotonic() < self.until:
                self.refused += 1
                raise locked()
            with original() as conn:
                yield conn

        monkeypatch.setattr(db, "write", write)

    def start(self, seconds: float) -> None:
        self.until = time.monotonic() + seconds


def kinds_of(db: Database, job_id: str) -> list[str]:
    return [kind for _, kind in events_of(db, job_id)]


def claimed_run(db: Database, lease_seconds: float) -> JobRun:
    lease, job = queue.claim(db, "w", lease_seconds=lease_seconds)  # type: ignore[misc]
    return JobRun(db=db, lease=lease, job=job)


def test_what_counts_as_the_databases_failure() -> None:
    assert database_outage(locked())
    assert database_outage(OperationalError("SELECT 1", {}, psycopg.OperationalError("connection refused")))
    assert database_outage(DBAPIError("SELECT 1", {}, Exception("server closed"), connection_invalidated=True))
    assert database_outage(DatabaseUnavailable("gone"))
    # The job's (or the code's) own failures are not outages: retrying them would only hide them.
    assert not database_outage(OperationalError("SELECT x", {}, sqlite3.OperationalError("no such table: x")))
    assert not database_outage(ProgrammingError("SELECT x", {}, psycopg.ProgrammingError("syntax error")))
    assert not database_outage(RuntimeError("simulated provider outage"))


def test_a_fenced_write_waits_out_a_short_outage(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    make_job(db)
    run = claimed_run(db, lease_seconds=30)
    outage = WriteOutage(db, monkeypatch)
    outage.start(0.6)
    started = time.monotonic()
    job = run.change(Change(kind="tick", progress=20))
    assert time.monotonic() - started >= 0.6 and outage.refused >= 3
    assert job.progress == 20 and job.attempts == 1
    assert kinds_of(db, job.id) == ["created", "claimed", "tick"]


def test_an_outage_outlasting_the_lease_gives_up_without_writing_or_charging(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_job(db)
    run = claimed_run(db, lease_seconds=1.5)
    outage = WriteOutage(db, monkeypatch)
    outage.start(60)
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable):
        run.change(Change(kind="tick", progress=20))
    assert time.monotonic() - started < 1.5  # it stopped counting on the lease before the lease ran out
    outage.until = 0
    job = queue.get_job(db, run.job.id)
    assert job.status == JobStatus.processing and job.attempts == 1 and job.progress == 0
    assert kinds_of(db, job.id) == ["created", "claimed"]


def wait_terminal(db: Database, job_id: str, timeout: float = 30) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = queue.get_job(db, job_id)
        if job.status.terminal:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end within {timeout}s")


def test_an_attempt_the_database_broke_resumes_in_place_uncharged(db: Database) -> None:
    job = make_job(db, max_attempts=1)
    leases: list[int] = []

    def handler(run: JobRun) -> None:
        leases.append(run.lease.token)
        if len(leases) == 1:  # e.g. a read outside a fenced write, while the database was away
            raise locked()
        run.change(Change(kind="completed", status=JobStatus.completed, progress=100))

    worker = Worker(db, [JobKind(CAMPAIGN, handler)], WorkerConfig(lease_seconds=5, poll_interval=0.05)).start()
    try:
        final = wait_terminal(db, job.id)
    finally:
        worker.stop(timeout=10)
    assert final.status == JobStatus.completed and final.attempts == 1
    assert leases == [1, 1]  # the same lease: resumed, not handed back and claimed again
    assert kinds_of(db, job.id) == ["created", "claimed", "completed"]


def test_an_attempt_the_database_keeps_breaking_while_it_answers_is_charged(db: Database) -> None:
    job = make_job(db, max_attempts=1)
    calls = 0

    def handler(run: JobRun) -> None:
        nonlocal calls
        calls += 1
        raise locked()  # the lease renews fine: this is no outage, whatever the error says

    worker = Worker(db, [JobKind(CAMPAIGN, handler)], WorkerConfig(lease_seconds=5, poll_interval=0.05)).start()
    try:
        final = wait_terminal(db, job.id)
    finally:
        worker.stop(timeout=10)
    assert final.status == JobStatus.failed and "database is locked" in (final.error or "")
    assert calls == MAX_STALLED_RESUMES + 1


def run_through_outage(
    db: Database, start_outage: Callable[[], None], *, lease_seconds: float, caplog: pytest.LogCaptureFixture
) -> Job:
    """A one-attempt campaign; ``start_outage`` is called (and returns) once enrichment is under way."""
    caplog.set_level(logging.WARNING, logger="prospectpro.jobs")
    job = submit(db, Settings(max_attempts=1), max_results=12)
    worker = Worker(
        db,
        [campaign_kind(make_pipeline(db, SlowEnricher(0.1), concurrency=1))],
        WorkerConfig(lease_seconds=lease_seconds, poll_interval=0.05),
    ).start()
    try:
        deadline = time.monotonic() + 60
        while kinds_of(db, job.id).count("lead_enriched") < 3:
            assert time.monotonic() < deadline, "enrichment never started"
            time.sleep(0.02)
        start_outage()
        final = wait_until_done(db, job.id, timeout=60)
    finally:
        worker.stop(timeout=10)
    kinds = kinds_of(db, job.id)
    assert final.status == JobStatus.completed, (final.error, kinds)
    assert final.attempts == 1 and not NOT_THE_JOBS_FAULT & set(kinds)
    assert kinds.count("lead_enriched") == 12
    _, total = list_leads(db, final.campaign_id, LOCAL_USER_ID)
    assert total == 12
    assert any("database unreachable" in r.getMessage() for r in caplog.records), "the outage was never felt"
    return final


def test_sqlite_locked_for_two_seconds_mid_job_costs_no_attempt(
    db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ensure_bundled_places(db)
    outage = WriteOutage(db, monkeypatch)
    run_through_outage(db, lambda: outage.start(2.0), lease_seconds=6, caplog=caplog)
    assert outage.refused > 0


def _allow_connections(admin: Database, name: str, allowed: bool) -> None:
    with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:  # and drop every connection already open to it: as a restart does
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %(name)s AND pid <> pg_backend_pid()",
                {"name": name},
            )


@pytest.mark.postgres
def test_postgresql_gone_for_three_seconds_mid_job_costs_no_attempt(
    pg_server: Database, pg_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Only this test's database refuses connections: the shared server keeps running."""
    name = pg_db.engine.url.database
    assert name
    ensure_bundled_places(pg_db)

    def outage() -> None:
        _allow_connections(pg_server, name, allowed=False)
        try:
            time.sleep(3.0)
        finally:
            _allow_connections(pg_server, name, allowed=True)

    run_through_outage(pg_db, outage, lease_seconds=9, caplog=caplog)

