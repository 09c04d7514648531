"""The original product's backend test script (scripts/test-background-tasks.sh of ProspectPro v4.2),
request for request, against the server `prospectpro serve` runs: the base URL and the key changed,
nothing else."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.api.conftest import start_server
from tests.api.helpers import new_api_key

POLLS = 6  # the script polls at most six times (every 5 s; here the job is done sooner)
POLL_INTERVAL = 0.25


def test_the_original_test_script_passes(tmp_path: Path) -> None:
    server = start_server(tmp_path, workers=1)
    key = new_api_key(server.db, "migrated-team")
    sent: list[str] = []

    def record(request: httpx.Request) -> None:
        sent.append(f"{request.method} {request.url.raw_path.decode()}")
        assert request.headers["apikey"] == key and request.headers["authorization"] == f"Bearer {key}"

    headers = {"apikey": key, "Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    try:
        with httpx.Client(base_url=server.url, headers=headers, timeout=30, event_hooks={"request": [record]}) as c:
            body = {"businessType": "coffee shop", "location": "Helsinki", "maxResults": 3, "budgetLimit": 5.0}
            submitted = c.post("/functions/v1/business-discovery-background", json=body).json()
            assert submitted["success"] is True and submitted["jobId"]
            job_id, campaign_id = submitted["jobId"], submitted["campaignId"]

            status = None
            for _ in range(POLLS):
                poll = c.get(f"/rest/v1/discovery_jobs?id=eq.{job_id}&select=status,progress,current_stage,metrics")
                [job] = poll.json()
                status = job["status"]
                if status in ("completed", "failed"):
                    break
                time.sleep(POLL_INTERVAL)
            assert status == "completed", job
            assert isinstance(job["metrics"]["total_cost"], float)

            [campaign] = c.get(f"/rest/v1/campaigns?id=eq.{campaign_id}&select=*").json()
            assert campaign["results_count"] == 3 and campaign["total_cost"] == 0.0  # OSM only: nothing paid

            leads = c.get(f"/rest/v1/leads?campaign_id=eq.{campaign_id}&select=business_name,email,confidence_score")
            assert leads.status_code == 200 and len(leads.json()) == 3
            assert all(lead["business_name"] and lead["confidence_score"] >= 50 for lead in leads.json())
    finally:
        server.stop()
    polls = sent[1:-2]
    assert sent[0] == "POST /functions/v1/business-discovery-background"
    assert 1 <= len(polls) <= POLLS and all(p.startswith("GET /rest/v1/discovery_jobs?id=eq.") for p in polls)
    assert sent[-2] == f"GET /rest/v1/campaigns?id=eq.{campaign_id}&select=*"
    assert sent[-1] == f"GET /rest/v1/leads?campaign_id=eq.{campaign_id}&select=business_name,email,confidence_score"
