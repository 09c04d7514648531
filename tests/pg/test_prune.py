"""Retention (issue 13): finished jobs' events and candidates, expired ledger answers and old sign-outs go once
old enough, in batches, by one process at a time; never a running job's rows, never a lead; a reader of a
pruned job's events gets 410, not a 500."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select, text, update
from typer.testing import CliRunner

from prospectpro.cli import app
from prospectpro.domain.clock import utcnow
from prospectpro.domain.status import JobStatus
from prospectpro.jobs import queue
from prospectpro.jobs.model import Change, Job
from prospectpro.services.users import create_user, revoke_session, sign_in_with_key
from prospectpro.store import prune as retention
from prospectpro.store.db import Database
from prospectpro.store.schema import (
    LOCAL_USER_ID,
    api_calls,
    credentials,
    discovery_jobs,
    job_candidates,
    job_events,
    leads,
)
from tests.api.conftest import start_server
from tests.support import make_job

DAYS = 30.0


def finish(db: Database, job: Job, *, status: JobStatus = JobStatus.completed, days_ago: float = 0) -> Job:
    with db.write() as conn:
        locked = queue.lock_job(conn, job.id)
        done, _ = queue.apply_change(conn, locked, Change(kind=status.value, status=status, progress=100))
        at = utcnow() - timedelta(days=days_ago)
        conn.execute(update(discovery_jobs).where(discovery_jobs.c.id == job.id).values(completed_at=at))
    return queue.get_job(db, job.id)


def add_candidates(db: Database, job: Job, n: int = 3) -> None:
    with db.write() as conn:
        conn.execute(
            insert(job_candidates),
            [
                {
                    "job_id": job.id,
                    "source": "osm",
                    "source_id": f"node/{i}",
                    "position": i,
                    "fingerprint": f"fp{i}",
                    "business": {"name": f"Cafe {i}"},
                }
                for i in range(n)
            ],
        )


def add_lead(db: Database, job: Job) -> None:
    with db.write() as conn:
        conn.execute(
            insert(leads).values(
                campaign_id=job.campaign_id,
                owner_id=job.owner_id,
                dedup_key=f"lead-{job.id}",
                business_name="Cafe kept",
                confidence_score=80,
                score_breakdown={},
                sources=["osm:node/1"],
                created_at=utcnow() - timedelta(days=90),
            )
        )


def add_answer(db: Database, job: Job, reusable_until: datetime) -> None:
    with db.write() as conn:
        conn.execute(
            insert(api_calls).values(
                idempotency_key=uuid.uuid4().hex,
                request_hash="h" * 64,
                provider="google",
                operation="text_search",
                request={"q": "cafe"},
                owner_id=job.owner_id,
                job_id=job.id,
                status="ok",
                cost="0.0320",
                response={"places": [{"id": "ChIJ1"}]},
                created_at=reusable_until - timedelta(days=30),
                reusable_until=reusable_until,
            )
        )


def counts(db: Database, job: Job) -> tuple[int, int]:
    with db.read() as conn:
        events = conn.execute(select(func.count()).where(job_events.c.job_id == job.id)).scalar()
        candidates = conn.execute(select(func.count()).where(job_candidates.c.job_id == job.id)).scalar()
    return int(events or 0), int(candidates or 0)


def scene(db: Database) -> dict[str, Job]:
    """Old finished jobs (two kinds of end), an old running one, a recently finished one."""
    old = finish(db, make_job(db), days_ago=40)
    old_failed = finish(db, make_job(db), status=JobStatus.failed, days_ago=35)
    running = make_job(db)
    queue.claim(db, "w1", 30)
    with db.write() as conn:  # it started long ago and is still running: never pruned
        conn.execute(
            update(discovery_jobs)
            .where(discovery_jobs.c.id == running.id)
            .values(created_at=utcnow() - timedelta(days=60))
        )
    recent = finish(db, make_job(db), days_ago=1)
    for job in (old, old_failed, running, recent):
        add_candidates(db, job)
    add_lead(db, old)
    add_answer(db, old, reusable_until=utcnow() - timedelta(days=31))  # expired long ago: its body goes
    add_answer(db, recent, reusable_until=utcnow() + timedelta(days=5))  # still reusable: kept
    return {"old": old, "old_failed": old_failed, "running": running, "recent": recent}


def test_dry_run_counts_and_deletes_nothing_then_prune_deletes_exactly_that(any_db: Database) -> None:
    jobs = scene(any_db)
    running = queue.get_job(any_db, jobs["running"].id)
    assert running.status == JobStatus.processing
    before = {name: counts(any_db, job) for name, job in jobs.items()}

    dry = retention.prune(any_db, older_than_days=DAYS, dry_run=True)
    assert (dry.jobs, dry.candidates, dry.ledger_answers) == (2, 6, 1)
    assert dry.events == before["old"][0] + before["old_failed"][0]
    assert {name: counts(any_db, job) for name, job in jobs.items()} == before  # nothing deleted

    done = retention.prune(any_db, older_than_days=DAYS, batch_size=1)  # one job per transaction
    assert done.as_dict() | {"cutoff": None} == dry.as_dict() | {"dry_run": False, "cutoff": None}
    assert done.batches == 2
    assert counts(any_db, jobs["old"]) == (0, 0) and counts(any_db, jobs["old_failed"]) == (0, 0)
    assert counts(any_db, jobs["running"]) == before["running"]  # never a running job's
    assert counts(any_db, jobs["recent"]) == before["recent"]
    with any_db.read() as conn:
        assert conn.execute(select(func.count()).select_from(leads)).scalar() == 1  # never a lead
        answers = conn.execute(select(api_calls.c.job_id, api_calls.c.response, api_calls.c.cost)).all()
    # The expired answer's body went; its row (the money it cost) stays.
    assert {(row.job_id, row.response is None, str(row.cost)) for row in answers} == {
        (jobs["old"].id, True, "0.0320"),
        (jobs["recent"].id, False, "0.0320"),
    }
    # The job rows stay: status, metrics, error still answer.
    assert queue.get_job(any_db, jobs["old"].id).status == JobStatus.completed
    again = retention.prune(any_db, older_than_days=DAYS)
    assert (again.jobs, again.events, again.candidates, again.ledger_answers) == (0, 0, 0, 0)


def test_old_sign_outs_go_live_sessions_and_keys_stay(any_db: Database) -> None:
    principal, key = create_user(any_db, "pruned")
    signed_in = [sign_in_with_key(any_db, key) for _ in range(2)]
    old_token, kept_token = (s[1] for s in signed_in if s is not None)
    revoke_session(any_db, old_token)
    with any_db.write() as conn:
        conn.execute(
            update(credentials)
            .where(credentials.c.revoked_at.is_not(None))
            .values(revoked_at=utcnow() - timedelta(days=40))
        )
    assert retention.prune(any_db, older_than_days=DAYS).sessions == 1
    with any_db.read() as conn:
        kinds = sorted(
            conn.execute(select(credentials.c.kind).where(credentials.c.user_id == principal.user_id)).scalars()
        )
    assert kinds == ["api_key", "session"] and kept_token


def test_a_pruned_jobs_events_answer_410_over_http(tmp_path: Path) -> None:
    server = start_server(tmp_path, workers=0)
    try:
        principal, key = create_user(server.db, "reader")
        job = finish(server.db, make_job(server.db, owner_id=principal.user_id), days_ago=40)
        live = make_job(server.db, owner_id=principal.user_id)
        retention.prune(server.db, older_than_days=DAYS)
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.url, timeout=10, headers=headers) as client:
            for params in ({"format": "json"}, {}):  # the page and the stream
                response = client.get(f"/api/v1/jobs/{job.id}/events", params=params)
                assert response.status_code == 410, response.text
                assert response.json()["error"]["code"] == "gone"
                assert "retention" in response.json()["error"]["message"]
            assert client.get(f"/api/v1/jobs/{job.id}").json()["status"] == "completed"  # the job itself answers
            page = client.get(f"/api/v1/jobs/{live.id}/events", params={"format": "json"}).json()
            assert [e["seq"] for e in page["events"]] == [1]
    finally:
        server.stop()


@pytest.mark.postgres
def test_one_pruner_at_a_time_on_postgres(pg_db: Database) -> None:
    job = finish(pg_db, make_job(pg_db), days_ago=40)
    with pg_db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as other:
        assert other.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": retention.ADVISORY_KEY}).scalar()
        try:
            report = retention.prune(pg_db, older_than_days=DAYS)
            assert report.skipped and report.jobs == 0 and counts(pg_db, job)[0] > 0
        finally:
            other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": retention.ADVISORY_KEY})
    report = retention.prune(pg_db, older_than_days=DAYS)
    assert not report.skipped and report.jobs == 1 and counts(pg_db, job) == (0, 0)


def test_prune_refuses_a_non_positive_age(db: Database) -> None:
    with pytest.raises(ValueError):
        retention.prune(db, older_than_days=0)


@pytest.mark.postgres
def test_cli_prune_dry_run_then_prune(pg_db: Database) -> None:
    job = finish(pg_db, make_job(pg_db), days_ago=40)
    env: dict[str, Any] = {
        "PROSPECTPRO_DATABASE_URL": pg_db.engine.url.render_as_string(False),
        "PROSPECTPRO_IMPORT_BUNDLED_PLACES": "false",
        "PROSPECTPRO_PRUNE_AFTER_DAYS": "30",
    }
    runner = CliRunner()
    dry = runner.invoke(app, ["prune", "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert "would delete" in dry.output and "of 1 finished job(s)" in dry.output
    assert counts(pg_db, job)[0] > 0
    done = runner.invoke(app, ["prune", "--json"], env=env)
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert report["jobs"] == 1 and report["dry_run"] is False and report["events"] == 2
    assert counts(pg_db, job) == (0, 0)
    assert queue.get_job(pg_db, job.id, LOCAL_USER_ID).status == JobStatus.completed


def test_a_worker_prunes_periodically(any_db: Database) -> None:
    from prospectpro.jobs.kinds import JobKind
    from prospectpro.jobs.worker import Worker, WorkerConfig

    job = finish(any_db, make_job(any_db), days_ago=40)
    config = WorkerConfig(poll_interval=0.05, prune_interval_seconds=0.05, prune_after_days=DAYS)
    worker = Worker(any_db, [JobKind("nothing", lambda run: None)], config).start()
    try:
        deadline = utcnow() + timedelta(seconds=5)
        while counts(any_db, job) != (0, 0):
            assert utcnow() < deadline, counts(any_db, job)
            time.sleep(0.02)
    finally:
        worker.stop(timeout=10)
