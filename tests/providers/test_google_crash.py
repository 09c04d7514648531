"""Never pay twice: a worker process killed right after a paid Google page was recorded; another takes over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from prospectpro.bootstrap import open_database
from prospectpro.config import Settings
from prospectpro.domain.campaign import CampaignRequest
from prospectpro.jobs.queue import get_job, list_events
from prospectpro.services.submissions import submit_campaign
from prospectpro.store.schema import LOCAL_USER_ID, api_calls, leads
from tests.providers.conftest import KEY
from tests.sim import google as google_sim
from tests.sim.server import Simulator
from tests.support import stop_processes, wait_until_terminal

ROOT = Path(__file__).parents[2]
LEASE = 1.5


def worker(data_dir: Path, sim: Simulator) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PROSPECTPRO_DATA_DIR": str(data_dir),
        "PROSPECTPRO_LEASE_SECONDS": str(LEASE),
        "PROSPECTPRO_POLL_INTERVAL": "0.05",
        "PROSPECTPRO_GOOGLE_PLACES_API_KEY": KEY,
        "PROSPECTPRO_GOOGLE_PLACES_BASE_URL": sim.url,
        # One page a second: a gap between two pages in which the worker is killed, with no page in flight.
        "PROSPECTPRO_GOOGLE_PLACES_RATE_PER_SECOND": "1",
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.Popen([sys.executable, "-m", "prospectpro", "worker"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def paid_pages(db: object, job_id: str) -> int:
    with db.read() as conn:  # type: ignore[attr-defined]
        return len(conn.execute(select(api_calls.c.id).where(
            api_calls.c.job_id == job_id, api_calls.c.provider == "google", api_calls.c.status == "ok")).all())


def run(data_dir: Path, sim: Simulator, *, kill: bool) -> tuple[int, list[Any], Decimal, int]:
    sim.reset_calls()
    settings = Settings(data_dir=data_dir, lease_seconds=LEASE, google_places_api_key=KEY,
                        google_places_base_url=sim.url)
    db = open_database(settings)
    request = CampaignRequest(business_type="cafe", location="Helsinki", max_results=45, tier="professional",
                              budget_limit=Decimal("1"), min_score=0)
    job = submit_campaign(db, settings, LOCAL_USER_ID, request).job
    procs = [worker(data_dir, sim)]
    try:
        if kill:
            deadline = time.monotonic() + 60
            while paid_pages(db, job.id) < 1:
                assert time.monotonic() < deadline, "no Google page was recorded"
                assert procs[0].poll() is None, procs[0].stderr.read().decode()  # type: ignore[union-attr]
                time.sleep(0.01)
            procs[0].send_signal(signal.SIGKILL)
            procs[0].wait()
            procs.append(worker(data_dir, sim))
        wait_until_terminal(db, job.id, timeout=90)
    finally:
        stop_processes(procs)
    final = get_job(db, job.id)
    assert final.status.value == "completed", final.error
    with db.read() as conn:
        rows = sorted(
            (r.business_name, r.phone, r.website, r.rating)
            for r in conn.execute(select(leads).where(leads.c.campaign_id == job.campaign_id))
        )
        spent = sum((Decimal(str(r.cost)) for r in conn.execute(select(api_calls.c.cost).where(
            api_calls.c.job_id == job.id))), Decimal("0"))
    takeovers = sum(e.kind == "taken_over" for e in list_events(db, job.id))
    return sim.count(google_sim.SEARCH_PATH), rows, spent, takeovers


@pytest.mark.slow
def test_a_killed_worker_pays_for_no_google_page_twice(tmp_path: Path, sim: Simulator) -> None:
    google_sim.install(sim, google_sim.grid(60, latitude=60.1674, longitude=24.9425), api_key=KEY)
    sim.set_latency(google_sim.SEARCH_PATH, 0.2)
    crashed_calls, crashed_leads, crashed_spent, takeovers = run(tmp_path / "crash", sim, kill=True)
    clean_calls, clean_leads, clean_spent, _ = run(tmp_path / "clean", sim, kill=False)
    assert takeovers == 1
    assert crashed_calls == clean_calls == 3
    assert crashed_spent == clean_spent == 3 * Decimal("0.035")
    assert crashed_leads == clean_leads and len(clean_leads) >= 45
