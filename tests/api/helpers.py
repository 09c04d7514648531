"""Helpers for the HTTP API tests: polling with deadlines, submitting, and a tiny SSE client.

The SSE parser follows the WHATWG event-stream rules closely enough for
these tests: ``field: value`` lines, comment lines starting with ``:``, and
a blank line dispatching the event. Comments are reported too, so a test can
see the keep-alives.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from prospectpro.jobs import queue
from prospectpro.jobs.model import JobEvent
from prospectpro.services.users import create_user
from prospectpro.store.db import Database

T = TypeVar("T")

TERMINAL = {"completed", "failed", "cancelled"}
CAFES = {"business_type": "cafe", "location": "Helsinki"}


def wait_until(predicate: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.03, what: str = "") -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def submit(client: httpx.Client, body: dict[str, Any] | None = None, **headers: str) -> dict[str, Any]:
    response = client.post("/api/v1/campaigns", json=body if body is not None else CAFES, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()


def get_job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()


def wait_for_job(
    client: httpx.Client, job_id: str, predicate: Callable[[dict[str, Any]], bool], *, timeout: float = 30.0
) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def check() -> bool:
        found.update(get_job(client, job_id))
        return predicate(found)

    wait_until(check, timeout=timeout, what=f"job {job_id} to match; last seen {found.get('status')}")
    return found


def wait_terminal(client: httpx.Client, job_id: str, *, timeout: float = 30.0) -> dict[str, Any]:
    return wait_for_job(client, job_id, lambda j: j["status"] in TERMINAL, timeout=timeout)


def new_api_key(db: Database, name: str | None = None) -> str:
    _, key = create_user(db, name or f"user-{uuid.uuid4().hex[:8]}")
    return key


def db_events(db: Database, job_id: str) -> list[dict[str, Any]]:
    """The job's whole log as the API shows it."""
    events: list[JobEvent] = queue.list_events(db, job_id, after=0, limit=100_000)
    return [e.to_public() for e in events]


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The error envelope every 4xx carries: {"error": {"code", "message", "details"}}."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body["error"]) >= {"code", "message", "details"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body


# -- Server-Sent Events --------------------------------------------------------


@dataclass
class SSEEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SSEComment:
    text: str


@dataclass
class SSEParser:
    """Feed it lines; it yields events and comments."""

    _data: list[str] = field(default_factory=list)
    _event: str | None = None
    _id: str | None = None
    _retry: int | None = None
    _any_field: bool = False

    def feed(self, line: str) -> SSEEvent | SSEComment | None:
        if line == "":
            if not self._any_field:
                return None
            event = SSEEvent(event=self._event or "message", data="\n".join(self._data), id=self._id, retry=self._retry)
            self._data, self._event, self._id, self._retry, self._any_field = [], None, None, None, False
            return event
        if line.startswith(":"):
            return SSEComment(line[1:].lstrip())
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        self._any_field = True
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None


def iter_sse(response: httpx.Response) -> Iterator[SSEEvent | SSEComment]:
    """Events and comments from a streaming response, as they arrive."""
    parser = SSEParser()
    for line in response.iter_lines():
        item = parser.feed(line)
        if item is not None:
            yield item


def read_stream(
    response: httpx.Response | Iterator[SSEEvent | SSEComment],
    *,
    stop: Callable[[SSEEvent], bool] | None = None,
    deadline: float = 30.0,
) -> tuple[SSEEvent | None, list[SSEEvent], list[SSEComment], bool]:
    """Read (snapshot, events, comments, ended): until the server ends the stream or ``stop`` says so.

    ``ended`` is True when the server closed the stream by itself. Give the iterator from
    ``iter_sse`` to go on reading a stream already started.
    """
    snapshot: SSEEvent | None = None
    events: list[SSEEvent] = []
    comments: list[SSEComment] = []
    limit = time.monotonic() + deadline
    items = iter_sse(response) if isinstance(response, httpx.Response) else response
    for item in items:
        if isinstance(item, SSEComment):
            comments.append(item)
        elif item.event == "snapshot":
            assert snapshot is None and not events, "the snapshot comes first, once"
            snapshot = item
        else:
            events.append(item)
            if stop is not None and stop(item):
                return snapshot, events, comments, False
        if time.monotonic() > limit:
            raise AssertionError(f"stream still open after {deadline}s; got {len(events)} events")
    return snapshot, events, comments, True


def event_dicts(events: list[SSEEvent]) -> list[dict[str, Any]]:
    """Stream events as the JSON the log holds, checking that each ``id:`` is its seq."""
    out = []
    for e in events:
        data = e.json()
        assert e.id == str(data["seq"]), (e.id, data["seq"])
        out.append(data)
    return out
