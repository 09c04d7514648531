from __future__ import annotations

import time

from tests.api.conftest import LiveServer


def test_submit_and_watch_a_campaign_to_completion(live_server: LiveServer) -> None:
    with live_server.client() as client:
        answer = client.post("/api/v1/campaigns", json={"business_type": "cafe", "location": "Helsinki", "max_results": 3})
        assert answer.status_code == 202, answer.text
        body = answer.json()
        token = body["session_token"]
    with live_server.client(token) as client:
        deadline = time.monotonic() + 30
        while (job := client.get(f"/api/v1/jobs/{body['job_id']}").json())["status"] != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        leads = client.get(f"/api/v1/campaigns/{body['campaign_id']}/leads").json()
        assert leads["total"] == 3 and job["metrics"]["leads"] == 3


def test_docs_work_without_a_cdn(live_server: LiveServer) -> None:
    with live_server.client() as client:
        page = client.get("/docs")
        assert page.status_code == 200 and "cdn.jsdelivr" not in page.text
        assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
        assert client.get("/openapi.json").json()["info"]["title"] == "ProspectPro"
