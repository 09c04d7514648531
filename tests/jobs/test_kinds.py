"""Kinds of job: a second kind runs through the same queue as campaigns (leases,
retries, cancel, events), a kind's status hook runs in the change's
transaction, and the system's own jobs stay out of every user's list."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, select
from typer.testing import CliRunner

from prospectpro.bootstrap import open_database
from prospectpro.config import Settings
from prospectpro.domain.clock import utcnow
from prospectpro.domain.status import JobStatus
from prospectpro.jobs import queue
from prospectpro.jobs.kinds import JobKind, register_kind
from prospectpro.jobs.model import Change, Job, LeaseLost
from prospectpro.jobs.run import CancelRequested, JobRun
from prospectpro.jobs.worker import Worker, WorkerConfig
from prospectpro.services.users import create_user
from prospectpro.store.db import Database
from prospectpro.store.schema import LOCAL_USER_ID, SYSTEM_USER_ID, campaigns, discovery_jobs
from tests.jobs.test_queue import events_of
from tests.pipeline.conftest import wait_until_done
from tests.support import make_job

ECHO = "echo"


def enqueue(db: Database, kind: str = ECHO, *, owner_id: str = LOCAL_USER_ID, max_attempts: int = 3, **config: Any) -> Job:
    with db.write() as conn:
        return queue.insert_job(conn, queue.NewJob(kind=kind, owner_id=owner_id, config=config, max_attempts=max_attempts))


def echo(run: JobRun) -> None:
    """The trivial kind: says its config back, in two steps, stopping where it is asked to."""
    run.checkpoint()
    run.change(Change(kind="echoing", stage="echoing", progress=50, metrics={"said": run.job.config.get("say")}))
    run.checkpoint()
    run.change(Change(kind="completed", status=JobStatus.completed, stage="done", progress=100))


@pytest.fixture
def start_worker() -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(db: Database, *kinds: JobKind, **config: Any) -> Worker:
        worker = Worker(db, kinds, WorkerConfig(**{"lease_seconds": 5.0, "poll_interval": 0.05, **config}))
        started.append(worker.start())
        return worker

    yield start
    for worker in started:
        worker.stop(timeout=10)


def test_a_second_kind_runs_through_the_same_queue_and_leaves_campaigns_alone(
    any_db: Database, start_worker: Callable[..., Worker]
) -> None:
    campaign_job = make_job(any_db)
    job = enqueue(any_db, say="hello")
    assert job.kind == ECHO and job.campaign_id is None
    start_worker(any_db, JobKind(ECHO, echo))
    done = wait_until_done(any_db, job.id, timeout=30)
    assert done.status == JobStatus.completed and done.metrics == {"said": "hello"} and done.current_stage == "done"
    assert [k for _, k in events_of(any_db, job.id)] == ["created", "claimed", "echoing", "completed"]
    echoing = queue.list_events(any_db, job.id)[2]
    assert echoing.data["current_stage"] == "echoing" and echoing.data["stage_label"] == "Echoing"
    # A worker runs only the kinds it has handlers for: the campaign job waits for a campaign worker.
    assert queue.get_job(any_db, campaign_job.id).status == JobStatus.pending
    assert events_of(any_db, campaign_job.id) == [(1, "created")]


def test_a_failed_attempt_of_another_kind_is_retried_then_succeeds(
    any_db: Database, start_worker: Callable[..., Worker]
) -> None:
    attempts: list[int] = []

    def flaky(run: JobRun) -> None:
        attempts.append(run.job.attempts)
        if len(attempts) == 1:
            raise RuntimeError("first attempt breaks")
        echo(run)

    job = enqueue(any_db, "flaky", max_attempts=2, say="again")
    start_worker(any_db, JobKind("flaky", flaky), retry_base_seconds=0.01, retry_max_seconds=0.01)
    done = wait_until_done(any_db, job.id, timeout=30)
    assert done.status == JobStatus.completed and done.attempts == 2 and attempts == [1, 2]
    kinds = [k for _, k in events_of(any_db, job.id)]
    assert kinds == ["created", "claimed", "retry_scheduled", "claimed", "echoing", "completed"]
    retry = queue.list_events(any_db, job.id)[2]
    assert retry.data["error"] == "queued: RuntimeError: first attempt breaks"


def test_another_kind_is_leased_fenced_and_taken_over_like_a_campaign(any_db: Database) -> None:
    job = enqueue(any_db)
    now = utcnow()
    assert queue.claim(any_db, "A", 30, kinds={"campaign"}, now=now) is None  # not a kind A runs
    lease_a, claimed = queue.claim(any_db, "A", 30, kinds={ECHO}, now=now)  # type: ignore[misc]
    assert claimed.id == job.id and claimed.lease_owner == "A"
    later = now + timedelta(seconds=31)  # A's lease has run out by then
    lease_b, taken = queue.claim(any_db, "B", 30, kinds={ECHO}, now=later)  # type: ignore[misc]
    assert taken.id == job.id and lease_b.token == lease_a.token + 1
    with pytest.raises(LeaseLost):
        JobRun(db=any_db, lease=lease_a, job=claimed).change(Change(kind="echoing", progress=50))
    assert queue.renew_lease(any_db, lease_a, 30, now=later) is None
    assert [k for _, k in events_of(any_db, job.id)] == ["created", "claimed", "taken_over"]


def test_another_kind_is_cancelled_pending_at_once_and_running_at_its_checkpoint(
    any_db: Database, start_worker: Callable[..., Worker]
) -> None:
    pending = enqueue(any_db, "slow")
    assert queue.request_cancel(any_db, pending.id, LOCAL_USER_ID).status == JobStatus.cancelled
    started, proceed = threading.Event(), threading.Event()

    def slow(run: JobRun) -> None:
        started.set()
        proceed.wait(10)
        try:
            run.change(Change(kind="echoing", stage="echoing", progress=50))  # sees the cancel flag
            run.checkpoint()
        except CancelRequested:
            run.change(Change(kind="cancelled", status=JobStatus.cancelled))

    job = enqueue(any_db, "slow")
    start_worker(any_db, JobKind("slow", slow))
    assert started.wait(10)
    assert queue.request_cancel(any_db, job.id, LOCAL_USER_ID).cancel_requested
    proceed.set()
    done = wait_until_done(any_db, job.id, timeout=30)
    assert done.status == JobStatus.cancelled and done.progress == 50
    kinds = [k for _, k in events_of(any_db, job.id)]
    assert kinds == ["created", "claimed", "cancel_requested", "echoing", "cancelled"]


def test_the_status_hook_runs_in_the_transaction_of_the_change(any_db: Database) -> None:
    seen: list[tuple[str, str, str, str]] = []

    def hook(conn: Connection, job: Job, now: datetime) -> None:
        inside = conn.execute(select(discovery_jobs.c.status).where(discovery_jobs.c.id == job.id)).scalar_one()
        with any_db.read() as other:  # another connection sees only what is committed
            outside = other.execute(select(discovery_jobs.c.status).where(discovery_jobs.c.id == job.id)).scalar_one()
        seen.append((job.status.value, inside, outside, job.kind))

    register_kind("hooked", on_status_change=hook)
    job = enqueue(any_db, "hooked")
    lease, _ = queue.claim(any_db, "w", 30, kinds={"hooked"})  # type: ignore[misc]
    queue.release(any_db, lease)
    queue.request_cancel(any_db, job.id, LOCAL_USER_ID)
    assert seen == [
        ("processing", "processing", "pending", "hooked"),
        ("pending", "pending", "processing", "hooked"),
        ("cancelled", "cancelled", "pending", "hooked"),
    ]


def test_a_status_hook_that_raises_rolls_the_change_back(any_db: Database) -> None:
    def refuse(conn: Connection, job: Job, now: datetime) -> None:
        if job.status == JobStatus.cancelled:
            raise RuntimeError("the hook refuses")

    register_kind("refusing", on_status_change=refuse)
    job = enqueue(any_db, "refusing")
    with pytest.raises(RuntimeError, match="the hook refuses"):
        queue.request_cancel(any_db, job.id, LOCAL_USER_ID)
    after = queue.get_job(any_db, job.id)
    assert after.status == JobStatus.pending and after.event_seq == 1 and after.completed_at is None
    assert events_of(any_db, job.id) == [(1, "created")]


def test_a_cancelled_campaign_job_mirrors_its_campaign_through_the_campaign_kinds_hook(any_db: Database) -> None:
    job = make_job(any_db)
    queue.request_cancel(any_db, job.id, LOCAL_USER_ID)
    with any_db.read() as conn:
        row = conn.execute(select(campaigns.c.status, campaigns.c.completed_at).where(campaigns.c.id == job.campaign_id)).one()
    assert row.status == "cancelled" and row.completed_at is not None


# -- the system's own jobs ---------------------------------------------------


def test_the_system_owner_is_a_user_row(any_db: Database) -> None:
    from prospectpro.store.schema import users

    with any_db.read() as conn:
        assert conn.execute(select(users.c.kind).where(users.c.id == SYSTEM_USER_ID)).scalar_one() == "system"


def test_system_jobs_never_appear_in_the_api_list(tmp_path: Path) -> None:
    from tests.api.conftest import start_server

    server = start_server(tmp_path, workers=0)
    try:
        alice, key = create_user(server.db, "alice")
        system_job = enqueue(server.db, owner_id=SYSTEM_USER_ID)
        mine = enqueue(server.db, owner_id=alice.user_id)
        with server.client(key) as client:
            submitted = client.post("/api/v1/campaigns", json={"business_type": "cafe", "location": "Helsinki"})
            assert submitted.status_code == 202, submitted.text
            default = client.get("/api/v1/jobs").json()
            echoes = client.get("/api/v1/jobs", params={"kind": ECHO}).json()
            assert client.get(f"/api/v1/jobs/{system_job.id}").status_code == 404
        assert [(j["id"], j["kind"]) for j in default["jobs"]] == [(submitted.json()["job_id"], "campaign")]
        assert default["total"] == 1 and default["jobs"][0]["campaign_id"] == submitted.json()["campaign_id"]
        assert [(j["id"], j["kind"], j["campaign_id"]) for j in echoes["jobs"]] == [(mine.id, ECHO, None)]
        assert echoes["total"] == 1
    finally:
        server.stop()


def test_system_jobs_never_appear_in_the_cli_list(tmp_path: Path) -> None:
    from prospectpro.cli import app

    data = tmp_path / "data"
    db = open_database(Settings(data_dir=data, import_bundled_places=False))
    try:
        campaign_job = make_job(db)
        mine = enqueue(db)
        enqueue(db, owner_id=SYSTEM_USER_ID)
    finally:
        db.dispose()
    env = {"PROSPECTPRO_DATA_DIR": str(data), "PROSPECTPRO_IMPORT_BUNDLED_PLACES": "false"}
    runner = CliRunner()
    default = json.loads(runner.invoke(app, ["jobs", "list", "--json"], env=env).stdout)
    echoes = json.loads(runner.invoke(app, ["jobs", "list", "--kind", ECHO, "--json"], env=env).stdout)
    assert [(j["id"], j["kind"]) for j in default["jobs"]] == [(campaign_job.id, "campaign")]
    assert [(j["id"], j["kind"]) for j in echoes["jobs"]] == [(mine.id, ECHO)] and echoes["total"] == 1
    table = runner.invoke(app, ["jobs", "list", "--kind", ECHO], env=env).stdout
    assert "echo" in table and "1 of 1 echo jobs" in table  # the table is cut to the terminal's width
