"""The event stream as a client sees it: snapshot, replay, resume after a dropped connection, the end.

A tiny parser (tests/api/helpers.py) reads the text/event-stream; httpx-sse is not installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Callable
from typing import Any

import pytest

from prospectpro.api.hub import EventHub
from prospectpro.jobs.model import Change
from prospectpro.jobs.queue import apply_change, lock_job
from prospectpro.store.db import Database
from tests.api.conftest import LiveServer
from tests.api.helpers import (
    CAFES,
    TERMINAL,
    SSEComment,
    SSEEvent,
    assert_error,
    db_events,
    event_dicts,
    iter_sse,
    new_api_key,
    read_stream,
    submit,
    wait_terminal,
    wait_until,
)
from tests.support import make_job

SLOW = ["tests.plugins:SlowEnricher"]


def events_url(job_id: str) -> str:
    return f"/api/v1/jobs/{job_id}/events"


@pytest.fixture
def slow_server(make_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch) -> LiveServer:
    """Enrichment takes ~50 ms per lead, one at a time: a campaign of 20 stays in 'enriching' for ~1 s."""
    monkeypatch.setenv("PROSPECTPRO_TEST_ENRICH_DELAY", "0.05")
    return make_server(extra_enrichers=SLOW, enrich_concurrency=1)


@pytest.fixture
def finished(live_server: LiveServer) -> tuple[LiveServer, str, str, list[dict[str, Any]]]:
    """(server, api key, job id, the job's whole log) for a completed campaign."""
    key = new_api_key(live_server.db)
    with live_server.client(key) as client:
        job_id = submit(client, {**CAFES, "max_results": 3})["job_id"]
        assert wait_terminal(client, job_id)["status"] == "completed"
    log = db_events(live_server.db, job_id)
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    return live_server, key, job_id, log


def enriched_at_least(n: int) -> Callable[[SSEEvent], bool]:
    def stop(event: SSEEvent) -> bool:
        data = event.json()
        return data["kind"] == "lead_enriched" and data["data"]["done"] >= n

    return stop


def test_drop_in_the_middle_and_resume_with_last_event_id(slow_server: LiveServer) -> None:
    key = new_api_key(slow_server.db)
    with slow_server.client(key) as client:
        job_id = submit(client, {**CAFES, "max_results": 20, "min_confidence_score": 0})["job_id"]

        with client.stream("GET", events_url(job_id)) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert stream.headers["cache-control"] == "no-cache" and stream.headers["x-accel-buffering"] == "no"
            snapshot, first, _, ended = read_stream(stream, stop=enriched_at_least(3))
        # Leaving the block closes the connection in the middle of the stream.
        assert not ended and snapshot is not None
        assert snapshot.retry == 2000 and snapshot.id is None and snapshot.json()["id"] == job_id
        last = first[-1].json()
        assert last["data"]["status"] == "processing" and last["data"]["current_stage"] == "enriching_contacts"

        with client.stream("GET", events_url(job_id), headers={"Last-Event-ID": first[-1].id}) as stream:
            assert stream.status_code == 200
            snapshot2, second, _, ended = read_stream(stream)
        assert ended, "the stream ends after the terminal event"
        assert snapshot2 is not None and snapshot2.json()["id"] == job_id

        job = wait_terminal(client, job_id)
        assert job["status"] == "completed"

    log = db_events(slow_server.db, job_id)
    both = event_dicts(first) + event_dicts(second)
    assert [e["seq"] for e in both] == list(range(1, len(log) + 1)), "in order, no gaps, no repeats"
    assert both == log
    assert second[-1].json()["data"]["status"] in TERMINAL and second[-1].json()["kind"] == "completed"
    assert "lead_enriched" in {e["kind"] for e in event_dicts(second)}, "the drop happened while enriching"

    # A reconnect after the end: nothing more will come.
    with slow_server.client(key) as client:
        gone = client.get(events_url(job_id), headers={"Last-Event-ID": str(log[-1]["seq"])})
        assert gone.status_code == 204 and gone.content == b""


def test_drop_and_resume_with_after_works_the_same(slow_server: LiveServer) -> None:
    key = new_api_key(slow_server.db)
    with slow_server.client(key) as client:
        job_id = submit(client, {**CAFES, "max_results": 20, "min_confidence_score": 0})["job_id"]
        with client.stream("GET", events_url(job_id)) as stream:
            _, first, _, ended = read_stream(stream, stop=enriched_at_least(2))
        assert not ended
        with client.stream("GET", events_url(job_id), params={"after": first[-1].id}) as stream:
            _, second, _, ended = read_stream(stream)
        assert ended
    assert event_dicts(first) + event_dicts(second) == db_events(slow_server.db, job_id)


def test_after_and_last_event_id_replay_the_same_events(
    finished: tuple[LiveServer, str, str, list[dict[str, Any]]],
) -> None:
    server, key, job_id, log = finished
    with server.client(key) as client:
        for n in (0, 1, 3, len(log) - 1):
            with client.stream("GET", events_url(job_id), params={"after": n}) as stream:
                _, by_query, _, ended_q = read_stream(stream)
            if n == 0:
                with client.stream("GET", events_url(job_id)) as stream:  # a first connection
                    _, by_header, _, ended_h = read_stream(stream)
            else:
                with client.stream("GET", events_url(job_id), headers={"Last-Event-ID": str(n)}) as stream:
                    _, by_header, _, ended_h = read_stream(stream)
            assert ended_q and ended_h
            assert event_dicts(by_query) == event_dicts(by_header) == log[n:], n


def test_finished_job_stream_and_the_end(finished: tuple[LiveServer, str, str, list[dict[str, Any]]]) -> None:
    server, key, job_id, log = finished
    with server.client(key) as client:
        # A first connection to a finished job: snapshot, the whole log, then the server closes.
        with client.stream("GET", events_url(job_id)) as stream:
            snapshot, events, _, ended = read_stream(stream, deadline=10)
        assert ended and snapshot is not None and snapshot.json()["status"] == "completed"
        assert event_dicts(events) == log
        # Resuming at or beyond the end: 204, which tells EventSource to stop.
        for position in (len(log), len(log) + 5):
            response = client.get(events_url(job_id), headers={"Last-Event-ID": str(position)})
            assert response.status_code == 204, position
        # ... and the JSON page says the same: nothing after the end.
        assert client.get(events_url(job_id), params={"format": "json", "after": len(log)}).json() == {
            "events": [],
            "next_after": len(log),
        }
        # An empty Last-Event-ID is a first connection; so is any value that is no sequence number
        # (the SSE standard makes it any string).
        for no_position in ("", "x", "-1", "1.5", "null"):
            with client.stream("GET", events_url(job_id), headers={"Last-Event-ID": no_position}) as stream:
                _, events, _, ended = read_stream(stream, deadline=10)
            assert stream.status_code == 200 and ended and event_dicts(events) == log, no_position
        assert_error(client.get(events_url(job_id), params={"after": -1}), 422, "invalid_input")


def test_keepalive_comment_while_nothing_happens(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(sse_keepalive_seconds=0.2, workers=0)
    key = new_api_key(server.db)
    with server.client(key) as client:
        job_id = submit(client)["job_id"]
        with client.stream("GET", events_url(job_id)) as stream:
            items = iter_sse(stream)
            snapshot = next(items)
            assert isinstance(snapshot, SSEEvent) and snapshot.event == "snapshot"
            created = next(items)
            assert isinstance(created, SSEEvent) and created.json()["kind"] == "created" and created.id == "1"
            started = time.monotonic()
            comments = []
            for item in items:
                assert isinstance(item, SSEComment), item  # the job is pending: nothing but keep-alives
                comments.append(item)
                if len(comments) == 3:
                    break
            elapsed = time.monotonic() - started
            assert [c.text for c in comments] == ["keep-alive"] * 3
            assert 0.4 <= elapsed < 5, elapsed
            # The stream is still live: a cancel arrives and ends it.
            with server.client(key) as other:
                assert other.post(f"/api/v1/jobs/{job_id}/cancel").json()["status"] == "cancelled"
            _, rest, _, ended = read_stream(items, deadline=10)
        assert ended and [e.json()["kind"] for e in rest] == ["cancelled"] and rest[0].id == "2"


def test_open_streams_per_owner(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(streams_per_owner=1, workers=0, sse_keepalive_seconds=1)
    key, other_key = new_api_key(server.db), new_api_key(server.db)
    with server.client(key) as client, server.client(other_key) as other:
        job_id = submit(client)["job_id"]
        other_job = submit(other)["job_id"]
        with client.stream("GET", events_url(job_id)) as first:
            lines = first.iter_lines()
            assert next(lines) == "event: snapshot"
            second = client.get(events_url(job_id))
            body = assert_error(second, 429, "rate_limited")
            assert second.headers["retry-after"] == "5" and body["error"]["details"] == {"retry_after": 5}
            # The JSON page is no stream: still allowed.
            assert client.get(events_url(job_id), params={"format": "json"}).status_code == 200
            # Another owner has a budget of their own.
            with other.stream("GET", events_url(other_job)) as theirs:
                assert theirs.status_code == 200 and next(theirs.iter_lines()) == "event: snapshot"
        # Once the first stream is closed, the owner may open one again.
        def reopened() -> bool:
            with client.stream("GET", events_url(job_id)) as again:
                return again.status_code == 200

        wait_until(reopened, timeout=10, what="the closed stream to be released")


# -- regressions and open bugs --------------------------------------------------------------


# Regression test; the bug it caught (since fixed): api/routes.py job_events: position = after if after is not
# None else resume, so on an EventSource reconnect to a URL with ?after=N the Last-Event-ID header is ignored
# and every event since N is sent again
def test_reconnect_to_an_after_url_resumes_from_last_event_id(
    finished: tuple[LiveServer, str, str, list[dict[str, Any]]],
) -> None:
    server, key, job_id, log = finished
    with server.client(key) as client:
        url = events_url(job_id)
        with client.stream("GET", url, params={"after": 1}) as stream:
            _, first, _, _ = read_stream(stream, stop=lambda e: e.id == "3")
        # The browser reconnects to the same URL and adds the id it saw last.
        with client.stream("GET", url, params={"after": 1}, headers={"Last-Event-ID": first[-1].id}) as stream:
            _, second, _, _ = read_stream(stream, deadline=10)
    assert event_dicts(first) + event_dicts(second) == log[1:]


# Regression test; the bug it caught (since fixed): api/hub.py EventHub.subscribe creates a new channel with
# last_seq=<the subscriber's after>; a stream opened with a position beyond the log makes the channel skip
# every later event, so other streams of the same job never get them (and never end)
def test_a_position_beyond_the_log_does_not_starve_other_streams(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(sse_keepalive_seconds=0.2, workers=0)
    key = new_api_key(server.db)
    with server.client(key) as client, server.client(key) as watcher:
        job_id = submit(client)["job_id"]
        with client.stream("GET", events_url(job_id), params={"after": 100}) as ahead:
            lines = ahead.iter_lines()
            assert next(lines) == "event: snapshot"
            with watcher.stream("GET", events_url(job_id)) as stream:
                assert client.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 202
                _, events, _, ended = read_stream(stream, deadline=2)
    assert ended and [e.json()["kind"] for e in events] == ["created", "cancelled"]


# Regression test; the bug it caught (since fixed): api/hub.py EventHub.subscribe adds the subscription to
# channel.subscribers before it takes channel.lock; a refresh running at that moment hands it the newest
# events first, which raises sub.after past its backlog, and the backlog events are then dropped (a gap in the
# stream)
def test_a_new_stream_during_a_refresh_gets_every_event(db: Database) -> None:
    """Deterministic: the refresh is held inside its read while a second stream subscribes."""
    job = make_job(db)

    def add_event(n: int) -> None:
        with db.write() as conn:
            apply_change(conn, lock_job(conn, job.id), Change(kind="note", data={"n": n}))

    def subscribe(hub: EventHub, after: int, head: int) -> Any:
        if "head" in inspect.signature(hub.subscribe).parameters:
            return hub.subscribe(job.id, job.owner_id, after, head)
        return hub.subscribe(job.id, job.owner_id, after)

    async def scenario() -> list[int]:
        hub = EventHub(db, poll_interval=3600)  # not started: the test drives the refreshes
        await subscribe(hub, 0, 1)  # a first viewer; channel at seq 1
        add_event(2)
        add_event(3)

        gate = asyncio.Event()
        read = hub._read

        async def held_read(job_id: str, after: int) -> Any:
            await gate.wait()
            return await read(job_id, after)

        hub._read = held_read  # type: ignore[method-assign]
        refresh = asyncio.create_task(hub._refresh(job.id))
        channel = hub._channels[job.id]
        while not channel.lock.locked():
            await asyncio.sleep(0)
        joining = asyncio.create_task(subscribe(hub, 0, 3))  # a second viewer, from the start
        for _ in range(100):  # let it go as far as it can while the refresh holds the lock
            await asyncio.sleep(0)
        gate.set()
        await refresh
        sub = await joining
        seqs = []
        while not sub.queue.empty():
            seqs.append(sub.queue.get_nowait().seq)
        return seqs

    assert asyncio.run(scenario()) == [1, 2, 3]


# Regression: api/hub.py EventHub.subscribe counts the stream (_streams_by_owner += 1) and creates the
def test_a_stream_cancelled_while_subscribing_is_not_counted(db: Database) -> None:
    """Deterministic: the backlog read is held while the client's request is cancelled."""
    job = make_job(db)

    async def scenario() -> tuple[int, int, list[str]]:
        hub = EventHub(db, poll_interval=3600)
        gate = asyncio.Event()

        async def held_read(job_id: str, after: int) -> Any:
            await gate.wait()
            raise AssertionError("not reached")

        hub._read = held_read  # type: ignore[method-assign]
        kwargs = {"head": 1} if "head" in inspect.signature(hub.subscribe).parameters else {}
        joining = asyncio.create_task(hub.subscribe(job.id, job.owner_id, 0, **kwargs))
        for _ in range(100):
            await asyncio.sleep(0)
        joining.cancel()  # what Starlette does when the client disconnects
        with contextlib.suppress(asyncio.CancelledError):
            await joining
        return hub.stream_count, hub.streams_of(job.owner_id), list(hub._channels)

    assert asyncio.run(scenario()) == (0, 0, [])


def _refreshes_running() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if getattr(t.get_coro(), "__qualname__", "") == "EventHub._refresh"]


# Regression: api/hub.py EventHub._spawn_refresh started each refresh with asyncio.ensure_future and kept no
# reference (the loop holds tasks weakly, so one could be collected before it finished), and stop() left the
# refreshes in flight running against a stopped hub.
def test_the_hub_holds_its_refreshes_and_stop_cancels_them(db: Database) -> None:
    job = make_job(db)

    async def scenario() -> None:
        hub = EventHub(db, poll_interval=3600)  # the poll stays asleep: only announced commits refresh
        await hub.start()
        sub = await hub.subscribe(job.id, job.owner_id, 0, 1)
        assert [sub.queue.get_nowait().seq] == [1]

        # A commit (announced through the database's notifier): the refresh delivers, then the hub lets go of it.
        with db.write() as conn:
            apply_change(conn, lock_job(conn, job.id), Change(kind="note", data={"n": 2}))
        assert (await asyncio.wait_for(sub.queue.get(), 5)).seq == 2
        for _ in range(500):  # its done-callback runs a loop turn after it ends
            if not hub._refreshes:
                break
            await asyncio.sleep(0.01)
        assert not hub._refreshes and not _refreshes_running()

        # One held inside its read: the hub keeps it (nothing else does) until stop() cancels it.
        entered = asyncio.Event()

        async def held_read(job_id: str, after: int) -> Any:
            entered.set()
            await asyncio.Event().wait()  # never set: only a cancel ends it

        hub._read = held_read  # type: ignore[method-assign]
        hub._on_commit(job.id)
        await asyncio.wait_for(entered.wait(), 5)
        (refresh,) = _refreshes_running()
        assert hub._refreshes == {refresh}
        await asyncio.wait_for(hub.stop(), 5)
        assert refresh.cancelled() and not _refreshes_running() and not hub._refreshes
        hub._on_commit(job.id)  # a commit announced after stop starts nothing
        await asyncio.sleep(0.01)
        assert not _refreshes_running()

    asyncio.run(scenario())
