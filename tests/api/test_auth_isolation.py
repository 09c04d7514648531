"""Who may call: API keys, sessions, revoked and garbage credentials; and what another caller may see."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from prospectpro.services.users import create_user, revoke_user
from tests.api.conftest import LiveServer, start_server
from tests.api.helpers import CAFES, assert_error, get_job, new_api_key, submit


@pytest.fixture
def idle_server(make_server: Callable[..., LiveServer]) -> LiveServer:
    return make_server(workers=0)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """For the parametrized credential checks, which change nothing."""
    server = start_server(tmp_path_factory.mktemp("auth"), workers=0)
    yield server
    server.stop()


def test_bearer_api_key_then_revoked(idle_server: LiveServer) -> None:
    _, key = create_user(idle_server.db, "alice")
    with idle_server.client(key) as client:
        body = submit(client)
        assert get_job(client, body["job_id"])["status"] == "pending"
        assert client.get("/api/v1/jobs").json()["total"] == 1
    revoke_user(idle_server.db, "alice")
    with idle_server.client(key) as client:
        for response in (
            client.get("/api/v1/jobs"),
            client.get(f"/api/v1/jobs/{body['job_id']}"),
            client.post("/api/v1/campaigns", json=CAFES),
        ):
            error = assert_error(response, 401, "unauthorized")["error"]
            assert "revoked" in error["message"]


@pytest.mark.parametrize(
    "token",
    ["garbage", "ppk_not-a-real-key", "pps_not-a-real-session", "ppk_" + "x" * 300, "Bearer"],
)
def test_garbage_bearer_is_401_with_the_error_envelope(shared_server: LiveServer, token: str) -> None:
    with shared_server.client(token) as client:
        assert_error(client.get("/api/v1/jobs"), 401, "unauthorized")
        assert_error(client.post("/api/v1/campaigns", json=CAFES), 401, "unauthorized")
        assert_error(client.get(f"/api/v1/jobs/{uuid.uuid4()}"), 401, "unauthorized")


@pytest.mark.parametrize(
    "header",
    ["Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearer ppk_a ppk_b", "Token ppk_abc", "ppk_abc", "Bearer: ppk_abc"],
)
def test_malformed_authorization_header_is_401(shared_server: LiveServer, header: str) -> None:
    with httpx.Client(base_url=shared_server.url, headers={"Authorization": header}) as client:
        body = assert_error(client.get("/api/v1/jobs"), 401, "unauthorized")
        assert "Bearer" in body["error"]["message"] or "unknown" in body["error"]["message"]
        # A rejected caller creates nothing.
        assert_error(client.post("/api/v1/campaigns", json=CAFES), 401, "unauthorized")


def test_bearer_scheme_is_case_insensitive_and_session_tokens_work(idle_server: LiveServer) -> None:
    key = new_api_key(idle_server.db)
    with httpx.Client(base_url=idle_server.url, headers={"Authorization": f"bearer {key}"}) as client:
        assert client.get("/api/v1/jobs").status_code == 200
    with idle_server.client() as anon:
        token = submit(anon)["session_token"]
    with idle_server.client(token) as client:
        assert client.get("/api/v1/jobs").json()["total"] == 1


def test_a_stale_cookie_makes_the_caller_anonymous_not_an_error(idle_server: LiveServer) -> None:
    with httpx.Client(base_url=idle_server.url, cookies={"pp_session": "pps_stale"}) as client:
        assert client.get("/api/v1/jobs").json()["total"] == 0
        response = client.post("/api/v1/campaigns", json=CAFES)
        assert response.status_code == 202 and response.json()["session_token"]


def test_bearer_wins_over_the_cookie(idle_server: LiveServer) -> None:
    with idle_server.client() as anon:
        first = submit(anon)
    key = new_api_key(idle_server.db)
    with httpx.Client(
        base_url=idle_server.url,
        headers={"Authorization": f"Bearer {key}"},
        cookies={"pp_session": first["session_token"]},
    ) as client:
        assert client.get("/api/v1/jobs").json()["total"] == 0
        assert_error(client.get(f"/api/v1/jobs/{first['job_id']}"), 404, "not_found")


# -- isolation -----------------------------------------------------------------


def requests_for(job_id: str, campaign_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("GET", f"/api/v1/jobs/{job_id}", {}),
        ("GET", f"/api/v1/jobs/{job_id}/events", {"params": {"format": "json"}}),
        ("GET", f"/api/v1/jobs/{job_id}/events", {"params": {"format": "json", "after": 0}}),
        ("GET", f"/api/v1/jobs/{job_id}/events", {}),  # SSE
        ("GET", f"/api/v1/jobs/{job_id}/events", {"headers": {"Last-Event-ID": "1"}}),  # SSE resume
        ("POST", f"/api/v1/jobs/{job_id}/cancel", {}),
        ("GET", f"/api/v1/campaigns/{campaign_id}", {}),
        ("GET", f"/api/v1/campaigns/{campaign_id}/leads", {}),
        ("GET", f"/api/v1/campaigns/{campaign_id}/leads.csv", {}),
    ]


def normalized(response: httpx.Response, *ids: str) -> tuple[int, str, str]:
    text = response.text
    for i, value in enumerate(ids):
        text = text.replace(value, f"<id{i}>")
    return response.status_code, response.headers.get("content-type", ""), text


def test_other_callers_get_the_same_404_as_for_a_missing_id(idle_server: LiveServer) -> None:
    with idle_server.client() as owner:
        mine = submit(owner)
    job_id, campaign_id = mine["job_id"], mine["campaign_id"]
    ghost_job, ghost_campaign = str(uuid.uuid4()), str(uuid.uuid4())

    other_key = new_api_key(idle_server.db)
    with idle_server.client() as anon:
        other_session = submit(anon)["session_token"]  # a real, second anonymous session with a job of its own

    intruders: dict[str, httpx.Client] = {
        "api key": idle_server.client(other_key),
        "session bearer": idle_server.client(other_session),
        "session cookie": httpx.Client(base_url=idle_server.url, cookies={"pp_session": other_session}),
        "no credentials": idle_server.client(),
    }
    try:
        for who, client in intruders.items():
            for (method, url, kwargs), (_, ghost_url, _) in zip(
                requests_for(job_id, campaign_id), requests_for(ghost_job, ghost_campaign), strict=True
            ):
                theirs = client.request(method, url, **kwargs)
                missing = client.request(method, ghost_url, **kwargs)
                assert_error(theirs, 404, "not_found")
                assert normalized(theirs, job_id, campaign_id) == normalized(missing, ghost_job, ghost_campaign), (
                    who,
                    method,
                    url,
                )
            listed = client.get("/api/v1/jobs").json()
            assert job_id not in {j["id"] for j in listed["jobs"]}, who
            assert client.get("/api/v1/jobs", params={"status": "pending", "limit": 200}).json()["total"] <= 1
    finally:
        for client in intruders.values():
            client.close()

    # Nobody's cancel went through; the owner still sees everything.
    with idle_server.client(mine["session_token"]) as owner:
        assert get_job(owner, job_id)["status"] == "pending"
        assert [j["id"] for j in owner.get("/api/v1/jobs").json()["jobs"]] == [job_id]
        for method, url, kwargs in requests_for(job_id, campaign_id):
            if method == "GET" and not url.endswith("/events"):
                assert owner.request(method, url, **kwargs).status_code == 200, url


# Regression: api/app.py user_error() sends 401 (errors.Unauthorized) without a WWW-Authenticate header,
def test_401_names_the_bearer_scheme(shared_server: LiveServer) -> None:
    with shared_server.client("ppk_unknown") as client:
        response = client.get("/api/v1/jobs")
    assert response.status_code == 401
    assert response.headers.get("www-authenticate", "").lower().startswith("bearer")
