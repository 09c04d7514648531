"""An error no handler answers: the JSON error envelope with 500, logged, and the connection kept."""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from prospectpro.jobs import queue
from prospectpro.services import submitter as submitter_module
from tests.api.conftest import LiveServer
from tests.api.helpers import new_api_key

JOB_ID = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def idle_server(make_server: Callable[..., LiveServer]) -> LiveServer:
    return make_server(workers=0)


@pytest.fixture
def connection(idle_server: LiveServer) -> Iterator[http.client.HTTPConnection]:
    """One keep-alive connection: http.client sends every request on the same socket while it stays open."""
    url = urlsplit(idle_server.url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=15)
    yield conn
    conn.close()


def exchange(
    conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("an unexpected failure")


def assert_internal_error(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    assert status == 500, body
    assert headers["content-type"] == "application/json"
    assert headers.get("connection", "").lower() != "close"
    answer = json.loads(body)
    assert answer["error"] == {"code": "internal_error", "message": answer["error"]["message"], "details": None}
    assert "unexpected failure" not in answer["error"]["message"]  # the details are in the log, not the answer
    return answer


# Regression test; the bug it caught (since fixed): an unhandled error answered a text/plain 500 ("Internal
# Server Error") and uvicorn then closed the connection, so a keep-alive client lost it (a reset on its next request).
def test_an_unhandled_error_is_the_json_envelope_and_the_connection_serves_the_next_request(
    idle_server: LiveServer,
    connection: http.client.HTTPConnection,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(queue, "list_jobs", boom)
    auth = {"Authorization": f"Bearer {new_api_key(idle_server.db)}"}
    with caplog.at_level(logging.ERROR, logger="prospectpro.api.app"):
        assert_internal_error(*exchange(connection, "GET", "/api/v1/jobs", headers=auth))
    socket_before = connection.sock
    assert socket_before is not None
    status, _, body = exchange(connection, "GET", f"/api/v1/jobs/{JOB_ID}", headers=auth)
    assert status == 404, body
    assert connection.sock is socket_before  # the same connection, not a new one
    [record] = [r for r in caplog.records if r.name == "prospectpro.api.app"]
    assert "GET /api/v1/jobs" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


def test_after_an_unhandled_error_with_an_unread_body_the_connection_still_works(
    idle_server: LiveServer, connection: http.client.HTTPConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queue, "request_cancel", boom)  # the cancel endpoint never reads a body
    auth = {"Authorization": f"Bearer {new_api_key(idle_server.db)}", "Content-Type": "application/json"}
    for _ in range(3):
        assert_internal_error(*exchange(connection, "POST", f"/api/v1/jobs/{JOB_ID}/cancel", b"{" + b" " * 20_000 + b"}", auth))
        socket_before = connection.sock
        status, _, _ = exchange(connection, "GET", "/openapi.json")
        assert status == 200 and connection.sock is socket_before


def test_a_submission_that_fails_unexpectedly_is_a_json_500_on_both_submit_endpoints(
    idle_server: LiveServer, connection: http.client.HTTPConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(submitter_module, "write_submissions", boom)
    headers = {"Authorization": f"Bearer {new_api_key(idle_server.db)}", "Content-Type": "application/json"}
    body = json.dumps({"business_type": "cafe", "location": "60.17,24.94"}).encode()
    answer = assert_internal_error(*exchange(connection, "POST", "/api/v1/campaigns", body, headers))
    assert "success" not in answer
    compat = json.dumps({"businessType": "cafe", "location": "60.17,24.94"}).encode()
    answer = assert_internal_error(
        *exchange(connection, "POST", "/functions/v1/business-discovery-background", compat, headers)
    )
    assert answer["success"] is False  # the original product's clients look at this
