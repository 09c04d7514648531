"""A worker process killed with SIGKILL mid-enrichment; another finishes the job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prospectpro.bootstrap import open_database
from prospectpro.config import Settings
from prospectpro.domain.campaign import CampaignRequest
from prospectpro.domain.status import JobStatus
from prospectpro.jobs.queue import get_job, list_events
from prospectpro.services.campaigns import list_leads
from prospectpro.services.submissions import submit_campaign
from prospectpro.store.schema import LOCAL_USER_ID, job_candidates
from tests.support import stop_processes, wait_until_terminal

ROOT = Path(__file__).parents[2]
LEASE = 1.5


def worker_env(data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PROSPECTPRO_DATA_DIR": str(data_dir),
        "PROSPECTPRO_LEASE_SECONDS": str(LEASE),
        "PROSPECTPRO_POLL_INTERVAL": "0.05",
        "PROSPECTPRO_ENRICH_CONCURRENCY": "1",
        "PROSPECTPRO_EXTRA_ENRICHERS": json.dumps(["tests.plugins:SlowEnricher"]),
        "PROSPECTPRO_TEST_ENRICH_DELAY": "0.15",
        "PYTHONPATH": str(ROOT),
    }


def start_worker(data_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "prospectpro", "worker"],
        env=worker_env(data_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def leads_of(data_dir: Path, campaign_id: str) -> list[tuple[object, ...]]:
    db = open_database(Settings(data_dir=data_dir), prepare=False)
    leads, _ = list_leads(db, campaign_id, LOCAL_USER_ID)
    return sorted(
        (lead["business_name"], lead["address"], lead["phone"], lead["website"], lead["email"], lead["confidence_score"])
        for lead in leads
    )


def run_campaign(data_dir: Path, *, kill_after_enriched: int | None) -> tuple[str, str, float | None]:
    settings = Settings(data_dir=data_dir, lease_seconds=LEASE)
    db = open_database(settings)
    request = CampaignRequest(business_type="cafe", location="Helsinki", max_results=20)
    job = submit_campaign(db, settings, LOCAL_USER_ID, request).job
    first = start_worker(data_dir)
    killed_at = None
    procs = [first]
    try:
        if kill_after_enriched is not None:
            deadline = time.monotonic() + 60
            while sum(e.kind == "lead_enriched" for e in list_events(db, job.id)) < kill_after_enriched:
                assert time.monotonic() < deadline, "the worker never reached the enriching stage"
                assert first.poll() is None, first.stderr.read().decode()  # type: ignore[union-attr]
                time.sleep(0.02)
            first.send_signal(signal.SIGKILL)
            first.wait()
            killed_at = time.time()
            procs.append(start_worker(data_dir))
        wait_until_terminal(db, job.id, timeout=90)
    finally:
        stop_processes(procs)
    return job.id, job.campaign_id, killed_at


@pytest.mark.slow
def test_killed_worker_is_taken_over_and_the_result_is_unchanged(tmp_path: Path) -> None:
    crash_dir, clean_dir = tmp_path / "crash", tmp_path / "clean"
    job_id, campaign_id, killed_at = run_campaign(crash_dir, kill_after_enriched=5)
    _, clean_campaign, _ = run_campaign(clean_dir, kill_after_enriched=None)

    db = open_database(Settings(data_dir=crash_dir), prepare=False)
    job = get_job(db, job_id)
    assert job.status == JobStatus.completed and job.progress == 100 and job.attempts == 2
    events = list_events(db, job_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    progress = [e.data["progress"] for e in events]
    assert progress == sorted(progress)
    kinds = [e.kind for e in events]
    assert kinds.count("taken_over") == 1 and kinds.count("completed") == 1
    # Discovery and scoring were checkpointed: the second worker did not redo them.
    started = [e.data["current_stage"] for e in events if e.kind == "stage_started"]
    assert started == ["discovering_businesses", "scoring_businesses", "enriching_contacts", "storing_results"]
    enriched = [e.data["lead"]["candidate_id"] for e in events if e.kind == "lead_enriched"]
    assert len(enriched) == len(set(enriched)) == 20
    # Taken over within one lease period, plus a poll and the second process's start-up
    # (imports alone take ~1 s on a loaded 2-core machine).
    takeover = next(e for e in events if e.kind == "taken_over")
    assert killed_at is not None and takeover.created_at.timestamp() - killed_at < LEASE + 3.0

    with db.read() as conn:
        rows = conn.execute(job_candidates.select().where(job_candidates.c.job_id == job_id)).all()
    assert len(rows) == job.metrics["businesses_found"]
    assert len({(r.source, r.source_id) for r in rows}) == len(rows)

    assert leads_of(crash_dir, campaign_id) == leads_of(clean_dir, clean_campaign)
    assert len(leads_of(crash_dir, campaign_id)) == 20
