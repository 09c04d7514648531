"""POST /api/v1/campaigns/quote, and the same checks on POST /api/v1/campaigns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.api.conftest import LiveServer
from tests.api.helpers import assert_error, new_api_key

HERE = {"business_type": "cafe", "location": "60.1699,24.9384,1500"}
GOOGLE = {"google_places_api_key": "sim-google-key", "google_places_base_url": "http://127.0.0.1:9"}


@pytest.fixture
def server(make_server: Callable[..., LiveServer]) -> LiveServer:
    # No worker: whatever a quote did, nothing would run; the job list shows whether it enqueued.
    return make_server(workers=0, import_bundled_places=False, **GOOGLE)


def jobs_total(server: LiveServer, key: str) -> int:
    with server.client(key) as client:
        return int(client.get("/api/v1/jobs").json()["total"])


def post_quote(server: LiveServer, body: dict[str, Any], key: str | None = None) -> Any:
    with server.client(key) as client:
        return client.post("/api/v1/campaigns/quote", json={**HERE, **body})


def test_base_quote_is_zero_and_enqueues_nothing(server: LiveServer) -> None:
    key = new_api_key(server.db)
    response = post_quote(server, {"max_results": 45, "budget_limit": "100"}, key)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["sources"] == ["osm", "website"] and body["max_cost"] == "0" and body["estimated_cost"] == "0"
    assert body["within_budget"] is True and "free sources only" in body["notes"][0]
    assert jobs_total(server, key) == 0


def test_professional_quote_is_pages_times_price_as_strings(server: LiveServer) -> None:
    key = new_api_key(server.db)
    body = post_quote(server, {"tier": "professional", "max_results": 45}, key).json()
    assert body == {
        "sources": ["osm", "google", "website"],
        "max_cost": "0.105",  # 3 pages at $0.035
        "estimated_cost": "0.105",  # 45 places: 3 pages of 20
        "within_budget": True,
        "notes": body["notes"],
    }
    assert any("Google Places" in note for note in body["notes"])
    tiny = post_quote(server, {"tier": "professional", "max_results": 45, "budget_limit": "0.05"}, key).json()
    assert tiny["max_cost"] == "0.05" and tiny["within_budget"] is False
    assert jobs_total(server, key) == 0


def test_a_named_paid_source_the_budget_cannot_pay_is_422_at_quote_and_submit(server: LiveServer) -> None:
    key = new_api_key(server.db)
    body = {"tier": "professional", "sources": ["google"], "budget_limit": "0.01"}
    error = assert_error(post_quote(server, body, key), 422, "invalid_input")
    assert "$0.035" in error["error"]["message"] and "$0.01" in error["error"]["message"]
    with server.client(key) as client:
        assert_error(client.post("/api/v1/campaigns", json={**HERE, **body}), 422, "invalid_input")
    assert jobs_total(server, key) == 0


def test_unknown_source_and_base_with_google_are_422(server: LiveServer) -> None:
    key = new_api_key(server.db)
    unknown = assert_error(post_quote(server, {"sources": ["yelp"]}, key), 422, "invalid_input")
    assert "unknown source yelp" in unknown["error"]["message"]
    base = assert_error(post_quote(server, {"sources": ["google"]}, key), 422, "invalid_input")
    assert "base tier does not use google" in base["error"]["message"]
    with server.client(key) as client:
        assert_error(client.post("/api/v1/campaigns", json={**HERE, "sources": ["google"]}), 422)
        assert_error(client.post("/api/v1/campaigns", json={**HERE, "sources": ["yelp"]}), 422)
    assert jobs_total(server, key) == 0


def test_anonymous_professional_is_403_and_opens_no_session(server: LiveServer) -> None:
    paid = {"tier": "professional"}
    response = post_quote(server, paid)
    error = assert_error(response, 403, "forbidden")
    assert "anonymous sessions use the base tier" in error["error"]["message"]
    assert "set-cookie" not in response.headers
    with server.client() as client:
        submitted = client.post("/api/v1/campaigns", json={**HERE, **paid})
        assert_error(submitted, 403, "forbidden")
        assert "set-cookie" not in submitted.headers  # refused before a session was opened
        # A session of its own (from a base submission) is still anonymous.
        first = client.post("/api/v1/campaigns", json=HERE)
        assert first.status_code == 202, first.text
        token = first.json()["session_token"]
    assert_error(post_quote(server, paid, token), 403, "forbidden")
    with server.client(token) as client:
        assert_error(client.post("/api/v1/campaigns", json={**HERE, **paid}), 403, "forbidden")
    assert jobs_total(server, token) == 1  # the base one only
    # Anonymous base quotes are fine.
    assert post_quote(server, {}).json()["max_cost"] == "0"


def test_anonymous_paid_lets_sessions_use_professional(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(workers=0, import_bundled_places=False, anonymous_paid=True, **GOOGLE)
    response = post_quote(server, {"tier": "professional", "max_results": 20})
    assert response.status_code == 200, response.text
    assert response.json()["max_cost"] == "0.105"


def test_quote_validates_the_body_like_a_submission(server: LiveServer) -> None:
    key = new_api_key(server.db)
    assert_error(post_quote(server, {"business_type": "spaceship"}, key), 422)
    assert_error(post_quote(server, {"max_results": 0}, key), 422)
    assert_error(post_quote(server, {"tier": "platinum"}, key), 422)
    with server.client(key) as client:
        assert_error(client.post("/api/v1/campaigns/quote", content=b"{}", headers={"content-type": "text/plain"}), 415)
        assert_error(client.post("/api/v1/campaigns/quote", json=HERE, headers={"authorization": "Bearer nope"}), 401)


def test_the_compatibility_endpoint_stays_base(server: LiveServer) -> None:
    with server.client() as client:
        response = client.post(
            "/functions/v1/business-discovery-background",
            json={"businessType": "cafe", "location": "60.1699,24.9384,1500", "budgetLimit": "50"},
        )
    assert response.status_code == 202, response.text
    job_id = response.json()["jobId"]
    with server.client(response.json()["sessionToken"]) as client:
        job = client.get(f"/api/v1/jobs/{job_id}").json()
    assert job["config"]["tier"] == "base" and "sources" not in job["config"]


def test_other_methods_on_the_quote_are_405_not_a_campaign_lookup(server: LiveServer) -> None:
    key = new_api_key(server.db)
    with server.client(key) as client:
        for method in ("GET", "PUT", "DELETE"):
            response = client.request(method, "/api/v1/campaigns/quote")
            assert_error(response, 405)
            assert response.headers["allow"] == "POST"
        assert_error(client.get("/api/v1/campaigns/quote/leads"), 404)


def test_the_job_page_shows_the_budget_stop_and_the_cost_per_lead(
    make_server: Callable[..., LiveServer], sim: Any
) -> None:
    from tests.api.helpers import wait_terminal
    from tests.sim import google as google_sim

    google_sim.install(sim, google_sim.grid(60), api_key="sim-google-key")
    server = make_server(workers=1, **{**GOOGLE, "google_places_base_url": sim.url})
    key = new_api_key(server.db)
    body = {"business_type": "cafe", "location": "Helsinki", "tier": "professional", "sources": ["google"],
            "max_results": 45, "budget_limit": "0.05", "min_confidence_score": 0}
    with server.client(key) as client:
        submitted = client.post("/api/v1/campaigns", json=body)
        assert submitted.status_code == 202, submitted.text
        job = wait_terminal(client, submitted.json()["job_id"])
        assert job["status"] == "completed", job
        assert job["metrics"]["budget_exhausted"] is True and job["metrics"]["cost_per_lead"] == "0.00175"
        page = client.get(f"/jobs/{job['id']}").text
    assert '<p id="budget-stop" class="hint">Stopped at the budget' in page  # shown: not hidden
    assert '<div id="m-cpl-item"><dt>Cost per lead</dt><dd id="m-cpl">$0.00175</dd></div>' in page
    assert '<dd id="m-cost">$0.04</dd>' in page  # the cost so far, in cents as before
