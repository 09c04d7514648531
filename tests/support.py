"""Helpers shared by tests."""

from __future__ import annotations

import uuid

from prospectpro.domain.clock import utcnow
from prospectpro.domain.status import JobStatus
from prospectpro.jobs.model import Job
from prospectpro.jobs.queue import NewJob, insert_job
from prospectpro.store.db import Database
from prospectpro.store.schema import LOCAL_USER_ID, campaigns


def make_job(db: Database, *, max_attempts: int = 3, owner_id: str = LOCAL_USER_ID, config: dict | None = None) -> Job:
    """A pending job with a bare campaign, for queue-level tests."""
    now = utcnow()
    campaign_id = str(uuid.uuid4())
    with db.write() as conn:
        conn.execute(
            campaigns.insert().values(
                id=campaign_id,
                owner_id=owner_id,
                business_type="cafe",
                location="Helsinki",
                max_results=5,
                budget_limit=0,
                min_score=0,
                tier="base",
                include_delivered=False,
                status=JobStatus.pending.value,
                results_count=0,
                total_cost=0,
                created_at=now,
                updated_at=now,
            )
        )
        job = insert_job(
            conn, NewJob(campaign_id=campaign_id, owner_id=owner_id, config=config or {}, max_attempts=max_attempts)
        )
    return job


def wait_until_terminal(db: Database, job_id: str, timeout: float = 90) -> Job:
    """Poll the store until the job ended (crash tests: whichever worker finishes it)."""
    import time

    from prospectpro.jobs.queue import get_job

    deadline = time.monotonic() + timeout
    while not (job := get_job(db, job_id)).status.terminal:
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.05)
    return job


def stop_processes(procs: list) -> None:  # type: ignore[type-arg]
    """Terminate the worker processes a test started that still run."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
