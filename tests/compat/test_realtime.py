"""The Supabase Realtime subset at /realtime/v1/websocket, frame by frame (Phoenix channel protocol,
vsn 2.0.0 arrays and 1.0.0 objects), and the mapping of money to numbers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from prospectpro.api import realtime
from prospectpro.api.original_shape import money_number, original_metrics
from prospectpro.bootstrap import build_worker
from prospectpro.services.users import create_user
from tests.api.conftest import LiveServer, start_server
from tests.api.helpers import new_api_key, wait_until
from tests.compat.conftest import submit_original, supabase_headers

STREAMS_PER_OWNER = 3


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """No worker: a test decides when its jobs run."""
    server = start_server(tmp_path_factory.mktemp("rt"), workers=0, streams_per_owner=STREAMS_PER_OWNER)
    yield server
    server.stop()


def ws_url(server: LiveServer, key: str | None, vsn: str | None = "2.0.0") -> str:
    params = "&".join(p for p in (f"apikey={key}" if key else "", f"vsn={vsn}" if vsn else "") if p)
    return server.url.replace("http://", "ws://") + "/realtime/v1/websocket?" + params


class Socket:
    """A tiny Phoenix client speaking either wire format."""

    def __init__(self, ws: ClientConnection, vsn: str = "2.0.0") -> None:
        self.ws, self.vsn, self.ref = ws, vsn, 0

    def push(self, topic: str, event: str, payload: dict[str, Any], join_ref: str | None = None) -> str:
        self.ref += 1
        ref = str(self.ref)
        if self.vsn == "2.0.0":
            frame: Any = [join_ref, ref, topic, event, payload]
        else:
            frame = {"join_ref": join_ref, "ref": ref, "topic": topic, "event": event, "payload": payload}
        self.ws.send(json.dumps(frame))
        return ref

    def recv(self, timeout: float = 10) -> dict[str, Any]:
        data = json.loads(self.ws.recv(timeout=timeout))
        if self.vsn == "2.0.0":
            assert isinstance(data, list) and len(data) == 5, data
            keys = ("join_ref", "ref", "topic", "event", "payload")
            return dict(zip(keys, data, strict=True))
        assert isinstance(data, dict) and set(data) == {"join_ref", "ref", "topic", "event", "payload"}, data
        return data

    def join(self, topic: str, changes: list[dict[str, Any]], access_token: str | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "config": {"broadcast": {"self": False}, "presence": {"key": ""}, "postgres_changes": changes}
        }
        if access_token:
            payload["access_token"] = access_token
        ref = self.push(topic, "phx_join", payload, join_ref=str(self.ref + 1))
        reply = self.recv()
        assert reply["event"] == "phx_reply" and reply["ref"] == ref and reply["join_ref"] == ref, reply
        return reply


def job_change(job_id: str, event: str = "UPDATE") -> dict[str, Any]:
    return {"event": event, "schema": "public", "table": "discovery_jobs", "filter": f"id=eq.{job_id}"}


def submit(server: LiveServer, key: str) -> str:
    with httpx.Client(base_url=server.url, headers=supabase_headers(key), timeout=30) as client:
        return str(submit_original(client)["jobId"])


def run_jobs(server: LiveServer) -> Any:
    return build_worker(server.db, server.settings, 1).start()


def test_join_heartbeat_changes_through_completed_and_leave(idle: LiveServer) -> None:
    key = new_api_key(idle.db)
    job_id = submit(idle, key)
    topic = f"realtime:discovery_jobs:{job_id}"
    with connect(ws_url(idle, key)) as ws:
        s = Socket(ws)
        reply = s.join(topic, [job_change(job_id)], access_token=key)
        assert reply["payload"]["status"] == "ok"
        [accepted] = reply["payload"]["response"]["postgres_changes"]
        assert {k: accepted[k] for k in ("event", "schema", "table", "filter")} == job_change(job_id)
        assert isinstance(accepted["id"], int)
        system = s.recv()
        assert system["event"] == "system" and system["topic"] == topic
        assert system["payload"] == {
            "message": "Subscribed to PostgreSQL", "status": "ok", "extension": "postgres_changes",
            "channel": f"discovery_jobs:{job_id}",
        }  # fmt: skip
        ref = s.push("phoenix", "heartbeat", {})
        assert s.recv() == {"join_ref": None, "ref": ref, "topic": "phoenix", "event": "phx_reply",
                            "payload": {"status": "ok", "response": {}}}  # fmt: skip
        worker = run_jobs(idle)
        try:
            changes = []
            while not changes or changes[-1]["data"]["record"]["status"] != "completed":
                message = s.recv()
                assert message["event"] == "postgres_changes" and message["topic"] == topic, message
                changes.append(message["payload"])
        finally:
            worker.stop()
        assert all(c["ids"] == [accepted["id"]] for c in changes)
        data = changes[-1]["data"]
        assert (data["schema"], data["table"], data["type"]) == ("public", "discovery_jobs", "UPDATE")
        assert data["old_record"] == {"id": job_id} and data["errors"] is None
        assert {"name": "metrics", "type": "jsonb"} in data["columns"]
        record = data["record"]
        assert record["id"] == job_id and record["progress"] == 100 and record["completed_at"]
        assert isinstance(record["metrics"]["total_cost"], float)
        progress = [c["data"]["record"]["progress"] for c in changes]
        assert progress == sorted(progress) and changes[0]["data"]["record"]["status"] == "processing"
        assert changes[0]["data"]["record"]["started_at"] is not None
        leave = s.push(topic, "phx_leave", {}, join_ref="1")
        assert s.recv()["payload"] == {"status": "ok", "response": {}} and leave
        s.push(topic, "broadcast", {"type": "broadcast", "event": "x", "payload": {}})
        assert s.recv()["payload"] == {"status": "error", "response": {"reason": "unmatched topic"}}


def test_protocol_1_0_0_object_frames(idle: LiveServer) -> None:
    key = new_api_key(idle.db)
    job_id = submit(idle, key)
    for vsn in ("1.0.0", None):  # no vsn: 1.0.0, as Phoenix reads it
        with connect(ws_url(idle, key, vsn)) as ws:
            s = Socket(ws, "1.0.0")
            reply = s.join(f"realtime:job-{job_id}", [job_change(job_id, "*")])
            assert reply["payload"]["status"] == "ok"
            assert reply["payload"]["response"]["postgres_changes"][0]["event"] == "*"
            assert s.recv()["event"] == "system"
            ref = s.push("phoenix", "heartbeat", {})
            assert s.recv()["ref"] == ref


def test_another_owners_job_is_accepted_and_silent(idle: LiveServer) -> None:
    (principal, owner), stranger = create_user(idle.db, "owner"), new_api_key(idle.db)
    job_id = submit(idle, owner)
    with connect(ws_url(idle, stranger)) as ws:
        s = Socket(ws)
        # Accepted, as row-level security accepted it: nothing tells the stranger the job exists.
        assert s.join("realtime:spy", [job_change(job_id)])["payload"]["status"] == "ok"
        assert s.recv()["event"] == "system"
        worker = run_jobs(idle)
        try:
            with httpx.Client(base_url=idle.url, headers=supabase_headers(owner)) as c:
                wait_until(lambda: c.get(f"/api/v1/jobs/{job_id}").json()["status"] == "completed", what="completed")
        finally:
            worker.stop()
        ref = s.push("phoenix", "heartbeat", {})
        assert s.recv()["ref"] == ref  # the next frame is the heartbeat's reply: no change came before it
    with connect(ws_url(idle, owner)) as ws:  # the owner, now the job has ended: joined, nothing held
        s = Socket(ws)
        assert s.join("realtime:late", [job_change(job_id)])["payload"]["status"] == "ok"
        assert s.recv()["event"] == "system"
        assert idle.server.config.app.state.hub.streams_of(principal.user_id) == 0


@pytest.mark.parametrize(
    "change",
    [
        {"event": "UPDATE", "schema": "public", "table": "leads", "filter": "id=eq.1"},
        {"event": "INSERT", "schema": "public", "table": "discovery_jobs"},
        {"event": "UPDATE", "schema": "public", "table": "discovery_jobs"},  # every job: not offered
        {"event": "UPDATE", "schema": "public", "table": "discovery_jobs", "filter": "status=eq.completed"},
        {"event": "UPDATE", "schema": "private", "table": "discovery_jobs", "filter": "id=eq.x"},
    ],
)
def test_unsupported_subscriptions_are_refused(idle: LiveServer, change: dict[str, Any]) -> None:
    with connect(ws_url(idle, new_api_key(idle.db))) as ws:
        reply = Socket(ws).join("realtime:x", [change])
        assert reply["payload"]["status"] == "error" and "discovery_jobs" in reply["payload"]["response"]["reason"]


def test_streams_are_limited_per_owner(idle: LiveServer) -> None:
    principal, key = create_user(idle.db, "limited")
    jobs = [submit(idle, key) for _ in range(STREAMS_PER_OWNER + 1)]
    with connect(ws_url(idle, key)) as ws:
        s = Socket(ws)
        for job_id in jobs[:STREAMS_PER_OWNER]:
            assert s.join(f"realtime:{job_id}", [job_change(job_id)])["payload"]["status"] == "ok"
            assert s.recv()["event"] == "system"
        hub = idle.server.config.app.state.hub
        # Joining a joined topic again replaces its channel: no stream is counted twice.
        assert s.join(f"realtime:{jobs[1]}", [job_change(jobs[1])])["payload"]["status"] == "ok"
        assert s.recv()["event"] == "system"
        assert hub.streams_of(principal.user_id) == STREAMS_PER_OWNER
        refused = s.join(f"realtime:{jobs[-1]}", [job_change(jobs[-1])])["payload"]
        assert refused["status"] == "error" and "streams" in refused["response"]["reason"]
        s.push(f"realtime:{jobs[0]}", "phx_leave", {})
        assert s.recv()["payload"]["status"] == "ok"
        assert s.join(f"realtime:{jobs[-1]}", [job_change(jobs[-1])])["payload"]["status"] == "ok"
    wait_until(lambda: hub.streams_of(principal.user_id) == 0, what="the closed socket's streams released")


def test_a_silent_socket_is_closed(idle: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(realtime, "IDLE_SECONDS", 0.2)  # Phoenix's 60 s, shortened
    with connect(ws_url(idle, new_api_key(idle.db))) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.reason == "heartbeat timeout"


def test_bad_keys_and_versions_are_refused(idle: LiveServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(idle, "ppk_unknown"))
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        connect(ws_url(idle, None, "3.0.0"))
    with connect(ws_url(idle, None)) as ws:  # no key on the socket: a join's token decides
        reply = Socket(ws).join("realtime:x", [job_change("00000000-0000-0000-0000-000000000000")], "ppk_unknown")
        assert reply["payload"] == {
            "status": "error",
            "response": {"reason": "unknown or revoked API key or session token"},
        }


def test_garbage_frames_are_ignored(idle: LiveServer) -> None:
    with connect(ws_url(idle, new_api_key(idle.db))) as ws:
        for junk in ("not json", "[1,2]", '{"topic": 1}', json.dumps([None, "1", "t", "phx_join", "payload"])):
            ws.send(junk)
        ws.send(b"\x03binary")
        s = Socket(ws)
        ref = s.push("phoenix", "heartbeat", {})
        message = s.recv()
        if message["ref"] != ref:  # the join with a string payload: joined, with nothing to deliver
            assert message["payload"]["status"] == "ok"
            message = s.recv()
        assert message["ref"] == ref


def test_money_becomes_numbers_whatever_form_it_has() -> None:
    assert money_number("12.3400") == 12.34 and money_number(Decimal("0.1")) == 0.1 and money_number(0.1) == 0.1
    assert money_number(None) is None and money_number("n/a") is None and money_number(True) is None
    metrics = original_metrics(
        {"total_cost": "1.2500", "cost_per_lead": None, "providers": {"google": {"calls": 2, "cost": "0.0640"}}}
    )
    assert metrics == {"total_cost": 1.25, "cost_per_lead": None, "providers": {"google": {"calls": 2, "cost": 0.064}}}
    assert original_metrics({})["total_cost"] == 0.0  # a fresh job's hook still calls toFixed(2)
    assert original_metrics({"total_cost": 0.3})["total_cost"] == 0.3


def test_the_session_cookie_is_no_identity_here(idle: LiveServer) -> None:
    """Another site's page can open a WebSocket with the browser's cookies: they must name nobody."""
    with httpx.Client(base_url=idle.url) as anonymous:
        answer = submit_original(anonymous)
    cookie = {"Cookie": f"pp_session={answer['sessionToken']}"}
    with connect(ws_url(idle, None), additional_headers=cookie) as ws:
        s = Socket(ws)
        assert s.join("realtime:cookie", [job_change(answer["jobId"])])["payload"]["status"] == "ok"
        assert s.recv()["event"] == "system"
        assert answer["jobId"] not in idle.server.config.app.state.hub._channels  # nobody watches the job
