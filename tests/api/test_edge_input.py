"""What a client may send, refused at the edge the same way on both stores (issue 7, items 5 and 10).

PostgreSQL refuses a NUL byte in text outright, where SQLite stores it: before, a NUL in any string
(location, notify_url, sessionUserId, a "%00" id) was a 500 on PostgreSQL. Now every string field
refuses control characters with a 422, and an id that is not a UUID names nothing (404).
The /api/v1 JSON body is strict about types; the web form and the original product's endpoint,
whose clients send strings, stay lenient.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from typer.testing import CliRunner

from prospectpro.cli import app as cli_app
from prospectpro.domain.campaign import parse_campaign_request
from prospectpro.errors import InvalidInput
from tests.api.conftest import LiveServer, start_server
from tests.api.helpers import assert_error, new_api_key, read_stream, wait_terminal

COORDS = "60.1699,24.9384"  # no places data needed (the PostgreSQL server imports none)
BODY = {"business_type": "cafe", "location": COORDS, "max_results": 2}
COMPAT = {"businessType": "cafe", "location": COORDS, "maxResults": 2}
CONTROL = ["\x00", "\x01", "\x1b", "\x7f", "\x85"]  # C0 (NUL first), DEL, C1


@pytest.fixture(params=["sqlite", "postgresql"])
def edge_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    overrides: dict[str, Any] = {"import_bundled_places": False}
    if request.param == "postgresql":
        overrides["database_url"] = request.getfixturevalue("pg_db").url
    server = start_server(tmp_path, workers=1, **overrides)
    yield server
    server.stop()


def _job_count(server: LiveServer, key: str) -> int:
    with server.client(key) as client:
        return int(client.get("/api/v1/jobs").json()["total"])


def test_control_characters_in_any_string_field_are_a_422(edge_server: LiveServer) -> None:
    key = new_api_key(edge_server.db)
    cases: list[tuple[str, dict[str, Any], str]] = []
    for char in CONTROL:
        cases += [
            ("/api/v1/campaigns", {**BODY, "location": f"{COORDS}{char}"}, "location"),
            ("/api/v1/campaigns", {**BODY, "business_type": f"amenity=ca{char}fe"}, "business_type"),
            ("/api/v1/campaigns", {**BODY, "notify_url": f"http://127.0.0.1:9/{char}"}, "notify_url"),
            ("/functions/v1/business-discovery-background", {**COMPAT, "sessionUserId": f"a{char}b"}, "sessionUserId"),
            ("/functions/v1/business-discovery-background", {**COMPAT, "userEmail": f"a{char}@b.fi"}, "userEmail"),
            ("/functions/v1/business-discovery-background", {**COMPAT, "location": f"{char}{COORDS}"}, "location"),
        ]
    with edge_server.client(key) as client, edge_server.client() as anonymous:
        for path, body, field in cases:
            for who in (client, anonymous):  # the anonymous one would open a session labelled sessionUserId
                body_out = assert_error(who.post(path, json=body), 422, "invalid_input")
                assert body_out["error"]["details"][0]["loc"] == [field], (path, body)
                assert "control characters" in body_out["error"]["message"]
        # A clean submission still works, and the refused ones stored nothing.
        assert client.post("/api/v1/campaigns", json=BODY).status_code == 202
    assert _job_count(edge_server, key) == 1


def test_an_id_that_is_not_a_uuid_is_not_found(edge_server: LiveServer) -> None:
    key = new_api_key(edge_server.db)
    with edge_server.client(key) as client:
        submitted = client.post("/api/v1/campaigns", json=BODY).json()
        job_id, campaign_id = submitted["job_id"], submitted["campaign_id"]
        for bad in ("%00", "%01", "a%00b", f"{job_id}%00", "nope", f"{job_id[:-1]}g", f"{{{job_id}}}"):
            for method, path in (
                ("GET", f"/api/v1/jobs/{bad}"),
                ("POST", f"/api/v1/jobs/{bad}/cancel"),
                ("GET", f"/api/v1/jobs/{bad}/events?format=json"),
                ("GET", f"/api/v1/jobs/{bad}/events"),
                ("GET", f"/api/v1/campaigns/{bad}"),
                ("GET", f"/api/v1/campaigns/{bad}/leads"),
                ("GET", f"/api/v1/campaigns/{bad}/leads.csv"),
            ):
                assert_error(client.request(method, path), 404, "not_found")
        # The real ones, in any case of hex digits, are found.
        assert client.get(f"/api/v1/jobs/{job_id.upper()}").json()["id"] == job_id
        assert client.get(f"/api/v1/campaigns/{campaign_id.upper()}").status_code == 200
        assert wait_terminal(client, job_id)["status"] == "completed"


def test_pages_answer_not_found_and_reshow_the_form(edge_server: LiveServer) -> None:
    with edge_server.client() as browser:
        assert browser.get("/").cookies.get("pp_session")  # a session: the pages now look ids up
        for method, path in (("GET", "/jobs/%00"), ("POST", "/jobs/%00/cancel"), ("GET", "/campaigns/%00")):
            page = browser.request(method, path)
            assert page.status_code == 404 and page.headers["content-type"].startswith("text/html"), path
            assert "couldn’t find that" in page.text
        form = {"business_type": "cafe", "location": f"{COORDS}\x00", "max_results": "2"}
        again = browser.post("/campaigns", data=form)
        assert again.status_code == 422 and 'role="alert"' in again.text
        assert "location: must not contain control characters (U+0000" in again.text
        assert browser.post("/campaigns", data={**form, "location": COORDS}).status_code == 303


def test_api_v1_json_types_are_strict(edge_server: LiveServer) -> None:
    key = new_api_key(edge_server.db)
    with edge_server.client(key) as client:
        for field, value in (
            ("include_delivered", 0),
            ("include_delivered", "false"),
            ("max_results", True),
            ("max_results", "5"),
            ("max_results", 5.0),
            ("min_confidence_score", "50"),
        ):
            refused = assert_error(client.post("/api/v1/campaigns", json={**BODY, field: value}), 422, "invalid_input")
            assert refused["error"]["details"][0]["loc"] == [field], (field, value)
        typed = client.post("/api/v1/campaigns", json={**BODY, "max_results": 5, "include_delivered": True})
        assert typed.status_code == 202
        # Exact amounts may be strings.
        assert client.post("/api/v1/campaigns", json={**BODY, "budget_limit": "2.50"}).status_code == 202
        # The original product's clients send strings: that endpoint stays lenient.
        lenient = {**COMPAT, "maxResults": "2", "minConfidenceScore": "40", "budgetLimit": "3"}
        assert client.post("/functions/v1/business-discovery-background", json=lenient).status_code == 202
    assert _job_count(edge_server, key) == 3


def test_the_event_stream_is_what_the_openapi_schema_says(live_server: LiveServer) -> None:
    """Each event of a real stream validates against the itemSchema /openapi.json gives for it."""
    schema = schemathesis.openapi.from_url(f"{live_server.url}/openapi.json")
    operation = schema["/api/v1/jobs/{job_id}/events"]["GET"]
    key = new_api_key(live_server.db)
    with live_server.client(key) as client:
        submitted = client.post("/api/v1/campaigns", json={"business_type": "cafe", "location": "Helsinki"})
        job_id = submitted.json()["job_id"]
        wait_terminal(client, job_id)
        response = client.get(f"/api/v1/jobs/{job_id}/events")
        snapshot, events, _, ended = read_stream(httpx.Response(200, content=response.content))
        assert ended and snapshot is not None and len(events) > 3
        operation.validate_response(response)  # raises on any event that does not match
        # ... and one that is not what the schema says is caught: a bad id, a bad field of the JSON data.
        for old, new in ((b"id: 2\n", b"id: two\n"), (b'"seq":3,', b'"seq":"3",')):
            forged = response.content.replace(old, new, 1)
            assert forged != response.content
            wrong = httpx.Response(200, content=forged, headers=response.headers, request=response.request)
            wrong.elapsed = response.elapsed
            with pytest.raises(Exception, match="SSE event violates schema"):
                operation.validate_response(wrong)


def test_discover_refuses_control_characters(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli_app, ["discover", "ca\x1bfe", "Helsinki"], env={"PROSPECTPRO_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 2, result.output
    assert "business type: must not contain control characters (U+001B at position 3)" in result.output


def test_the_domain_model_refuses_them_after_trimming() -> None:
    """The rule sits in the campaign request itself, which the API, the form and the CLI all parse."""
    for char in CONTROL:
        with pytest.raises(InvalidInput, match="control characters"):
            parse_campaign_request({"business_type": "cafe", "location": f"Hel{char}sinki"})
    assert parse_campaign_request({"business_type": " cafe\n", "location": "Helsinki\t"}).business_type == "cafe"
