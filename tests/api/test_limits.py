"""Limits and input checks: rate limits, body size, media type, JSON, field values, webhook targets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from prospectpro.store.schema import discovery_jobs, users
from tests.api.conftest import LiveServer, start_server
from tests.api.helpers import CAFES, assert_error, new_api_key, submit

URL = "/api/v1/campaigns"


def _module_server(path: Path, **overrides: Any) -> Iterator[LiveServer]:
    server = start_server(path, workers=0, submissions_per_minute=100_000, sessions_per_minute=100_000, **overrides)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the many input checks that change nothing (each counts jobs before and after)."""
    yield from _module_server(tmp_path_factory.mktemp("limits"))


@pytest.fixture(scope="module")
def strict_notify_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from _module_server(tmp_path_factory.mktemp("notify"), allow_private_notify_urls=False)


def count_jobs(server: LiveServer) -> int:
    with server.db.read() as conn:
        return conn.execute(select(func.count()).select_from(discovery_jobs)).scalar_one()


def count_anonymous_users(server: LiveServer) -> int:
    with server.db.read() as conn:
        return conn.execute(select(func.count()).select_from(users).where(users.c.kind == "anonymous")).scalar_one()


# -- rate limits ---------------------------------------------------------------------


def test_submissions_per_minute(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(workers=0, submissions_per_minute=2)
    key = new_api_key(server.db)
    with server.client(key) as client:
        first = client.post(URL, json=CAFES, headers={"Idempotency-Key": "k1"})
        assert first.status_code == 202
        assert client.post(URL, json=CAFES).status_code == 202
        third = client.post(URL, json=CAFES)
        body = assert_error(third, 429, "rate_limited")
        retry_after = int(third.headers["retry-after"])
        assert 1 <= retry_after <= 60
        assert body["error"]["details"] == {"retry_after": retry_after}
        assert "per minute" in body["error"]["message"]
        # The compatibility endpoint shares the budget, and says success=false.
        compat = client.post("/functions/v1/business-discovery-background", json={"businessType": "cafe", "location": "Helsinki"})
        assert assert_error(compat, 429, "rate_limited")["success"] is False and compat.headers["retry-after"]
        # Replaying an accepted submission is not a new one: it still answers.
        replay = client.post(URL, json=CAFES, headers={"Idempotency-Key": "k1"})
        assert replay.status_code == 202 and replay.json()["job_id"] == first.json()["job_id"]
        assert replay.json()["created"] is False
    assert count_jobs(server) == 2
    # The limit is per owner.
    with server.client(new_api_key(server.db)) as other:
        assert other.post(URL, json=CAFES).status_code == 202


def test_new_anonymous_sessions_per_address(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(workers=0, sessions_per_minute=2)
    for _ in range(2):
        with server.client() as client:
            assert client.post(URL, json=CAFES).status_code == 202
    with server.client() as client:
        response = client.post(URL, json=CAFES)
        assert_error(response, 429, "rate_limited")
        assert int(response.headers["retry-after"]) >= 1
    # Callers who already hold a session or a key are not new sessions.
    with server.client(new_api_key(server.db)) as client:
        assert client.post(URL, json=CAFES).status_code == 202


# Regression test; the bug it caught (since fixed): api/routes.py submit() calls ensure_session() before
# submit_campaign() validates the business type and location, so every rejected anonymous submission creates
# an unusable session and uses up the per-address session budget
def test_rejected_anonymous_submissions_open_no_session(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(workers=0, sessions_per_minute=2)
    for body in ({"business_type": "cafe", "location": "Atlantis Under The Sea"}, {"business_type": "zzqx", "location": "Helsinki"}):
        with server.client() as client:
            response = client.post(URL, json=body)
            assert_error(response, 422, "invalid_input")
            assert "set-cookie" not in response.headers
    with server.client() as client:
        # Two typos must not lock this address out of starting a campaign.
        assert client.post(URL, json=CAFES).status_code == 202
    assert count_anonymous_users(server) == 1


# -- body size, media type, JSON ----------------------------------------------------------


def test_body_over_the_limit_is_413(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(workers=0, max_body_bytes=2048)
    padding = "x" * 3000
    with server.client() as client:
        response = client.post(URL, json={**CAFES, "business_type": padding})
        body = assert_error(response, 413, "payload_too_large")
        assert "2048" in body["error"]["message"]
        # Just under the limit is read (and then judged on its content).
        small = client.post(URL, json={**CAFES, "notify_url": "x" * 1500})
        assert small.status_code == 422
    assert count_jobs(server) == 0


# Regression test; the bug it caught (since fixed): api/app.py BodySizeLimit only looks at Content-Length; a
# chunked body (no Content-Length) of any size is read in full
def test_chunked_body_over_the_limit_is_413(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(workers=0, max_body_bytes=2048)

    def chunks() -> Iterator[bytes]:
        yield b'{"business_type": "cafe", "location": "Helsinki", "notify_url": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}'

    with server.client() as client:
        response = client.post(URL, content=chunks(), headers={"content-type": "application/json"})
        assert "content-length" not in response.request.headers
        assert_error(response, 413, "payload_too_large")


@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": "text/plain"},
        {"content-type": "application/x-www-form-urlencoded"},
        {"content-type": "multipart/form-data; boundary=x"},
        {"content-type": "application/jsonx"},
        {},
    ],
)
def test_non_json_content_type_is_415(shared_server: LiveServer, headers: dict[str, str]) -> None:
    before = count_jobs(shared_server)
    with shared_server.client() as client:
        response = client.post(URL, content=b'{"business_type": "cafe", "location": "Helsinki"}', headers=headers)
        body = assert_error(response, 415, "unsupported_media_type")
        assert "application/json" in body["error"]["message"]
    assert count_jobs(shared_server) == before


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/merge-patch+json", "APPLICATION/JSON"]
)
def test_json_content_types_are_accepted(shared_server: LiveServer, content_type: str) -> None:
    with shared_server.client() as client:
        response = client.post(URL, content=b'{"business_type":"cafe","location":"Helsinki"}', headers={"content-type": content_type})
        assert response.status_code == 202, response.text


@pytest.mark.parametrize("raw", [b"{", b'{"business_type": "cafe",}', b"not json", b'{"a": tru}'])
def test_invalid_json_is_400(shared_server: LiveServer, raw: bytes) -> None:
    with shared_server.client() as client:
        body = assert_error(client.post(URL, content=raw, headers={"content-type": "application/json"}), 400, "bad_request")
        assert "JSON" in body["error"]["message"]


# -- values ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_results": 0}, "max results must be at least 1"),
        ({"max_results": 10001}, "max results must be at most 10000"),
        ({"max_results": "many"}, "max results"),
        ({"business_type": ""}, "business type must not be empty"),
        ({"business_type": "   "}, "business type must not be empty"),
        ({"location": ""}, "location must not be empty"),
        ({"business_type": "x" * 101}, "business type must be at most 100 characters"),
        ({"business_type": "quantum teleporter shop"}, "unknown business type"),
        ({"location": "Atlantis Under The Sea"}, "unknown location"),
        ({"budget_limit": -1}, "budget limit must be at least 0"),
        ({"budget_limit": "1.23456"}, "budget limit"),
        ({"min_confidence_score": 101}, "minimum confidence score must be at most 100"),
        ({"min_confidence_score": -1}, "minimum confidence score must be at least 0"),
        ({"tier": "platinum"}, "tier"),
        ({"unknown_field": 1}, "unknown field 'unknown_field'"),
        ({"business_type": None}, "business type"),
    ],
)
def test_bad_values_are_422_with_a_readable_message(
    shared_server: LiveServer, change: dict[str, Any], message: str
) -> None:
    before = count_jobs(shared_server)
    with shared_server.client() as client:
        body = assert_error(client.post(URL, json={**CAFES, **change}), 422, "invalid_input")
        assert message in body["error"]["message"], body
    assert count_jobs(shared_server) == before


@pytest.mark.parametrize("raw", [b"[]", b'"cafe"', b"42", b"null", b"{}", b""])
def test_a_body_that_is_not_a_campaign_is_422(shared_server: LiveServer, raw: bytes) -> None:
    with shared_server.client() as client:
        response = client.post(URL, content=raw, headers={"content-type": "application/json"})
        assert_error(response, 422, "invalid_input")


def test_missing_fields_are_named(shared_server: LiveServer) -> None:
    with shared_server.client() as client:
        body = assert_error(client.post(URL, json={}), 422, "invalid_input")
        assert "business type is required" in body["error"]["message"]
        assert "location is required" in body["error"]["message"]


def test_idempotency_key_too_long_is_422(shared_server: LiveServer) -> None:
    with shared_server.client() as client:
        assert_error(client.post(URL, json=CAFES, headers={"Idempotency-Key": "k" * 256}), 422, "invalid_input")
        assert client.post(URL, json=CAFES, headers={"Idempotency-Key": "k" * 255}).status_code == 202


# -- notify_url --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.1.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://0.0.0.0/hook",
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "http://user:secret@1.1.1.1/hook",
        "http:///no-host",
        "not a url",
    ],
)
def test_notify_url_must_be_public(strict_notify_server: LiveServer, url: str) -> None:
    server = strict_notify_server
    before = count_jobs(server), count_anonymous_users(server)
    with server.client() as client:
        response = client.post(URL, json={**CAFES, "notify_url": url})
        body = assert_error(response, 422, "invalid_input")
        assert "notify_url" in body["error"]["message"]
        assert "set-cookie" not in response.headers
    assert (count_jobs(server), count_anonymous_users(server)) == before


# Regression test; the bug it caught (since fixed): net.py resolve_public() calls urlsplit() (and reads
# .hostname) outside its try blocks; a malformed IPv6 host raises ValueError and the API answers 500
@pytest.mark.parametrize("url", ["http://[::1/hook", "http://[not-an-ip]/hook"])
def test_malformed_notify_url_is_422_not_500(strict_notify_server: LiveServer, url: str) -> None:
    with strict_notify_server.client() as client:
        assert_error(client.post(URL, json={**CAFES, "notify_url": url}), 422, "invalid_input")


# -- numbers the store cannot hold -------------------------------------------------------------


# Regression test; the bug it caught (since fixed): api/routes.py job_events: 'after' has no upper bound and
# Last-Event-ID is any 20-digit number; a value >= 2**63 reaches SQLite/PostgreSQL as a bind parameter and the
# API answers 500
@pytest.mark.parametrize(
    ("params", "headers"),
    [({"format": "json", "after": 2**63}, {}), ({"format": "json"}, {"Last-Event-ID": "99999999999999999999"})],
)
def test_event_position_beyond_int64_is_not_a_server_error(
    shared_server: LiveServer, params: dict[str, Any], headers: dict[str, str]
) -> None:
    with shared_server.client() as client:
        job_id = submit(client)["job_id"]
        response = client.get(f"/api/v1/jobs/{job_id}/events", params=params, headers=headers)
        assert response.status_code in (200, 422), response.text
        if response.status_code == 200:
            assert response.json()["events"] == []
