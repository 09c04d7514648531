"""A Supabase Realtime subset at ``/realtime/v1/websocket`` (issue 17).

Enough of the Phoenix channel protocol, as ``@supabase/realtime-js`` (2.x, through
``@supabase/phoenix``) speaks it, for the original product's ``useJobProgress`` hook:
``phx_join`` with a ``postgres_changes`` config, the join reply listing the accepted
subscriptions with their ids, the ``system`` "Subscribed to PostgreSQL" message,
``heartbeat`` on the ``phoenix`` topic, ``phx_leave``, and ``postgres_changes`` messages.

Wire formats: ``vsn=2.0.0`` (realtime-js's default: each frame a JSON array
``[join_ref, ref, topic, event, payload]``) and ``vsn=1.0.0`` (JSON objects
``{join_ref, ref, topic, event, payload}``; also what a missing ``vsn`` means). Binary
frames (2.0.0's broadcast encoding) are not supported: broadcast and presence are not.

What is delivered: an ``UPDATE`` of ``public.discovery_jobs`` filtered by
``id=eq.<job id>``, one per change of the job (one per event of its log, so in order
and each once), ``record`` in the original's columns (``api/original_shape.py``),
``old_record`` the primary key only (as PostgreSQL's default replica identity gives).
The changes come from the same hub as the SSE stream (``api/hub.py``: the event log,
woken by this process's commits and by a poll for other processes' workers). The
key is an identity: a subscription to another owner's job is accepted (nothing tells
the caller it exists) and delivers nothing, as row-level security did. Each delivered
subscription counts as one of the owner's event streams (``streams_per_owner``).
The identity is the ``apikey`` of the socket's URL or a join's ``access_token``, never the
session cookie: a page of any other site can open a WebSocket that carries the browser's cookies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from prospectpro.api.hub import EventHub, Frame, Subscription
from prospectpro.api.original_shape import DISCOVERY_JOBS, job_columns, job_row, record, session_user_id
from prospectpro.config import Settings
from prospectpro.domain.status import JobStatus
from prospectpro.domain.text import parse_id
from prospectpro.errors import NotFound
from prospectpro.jobs import queue
from prospectpro.services.users import Principal, authenticate, recently_authenticated
from prospectpro.store.db import Database

log = logging.getLogger(__name__)
router = APIRouter()

VSN_1, VSN_2 = "1.0.0", "2.0.0"
IDLE_SECONDS = 60.0  # Phoenix closes a socket that sent nothing (not even a heartbeat, every 25 s) this long
MAX_FRAME_CHARS = 64 * 1024
MAX_CHANNELS = 100  # per socket
_FILTER = re.compile(r"id=eq\.(?P<id>[0-9A-Fa-f-]{36})")
_SUPPORTED = "ProspectPro's Realtime delivers UPDATE changes of public.discovery_jobs filtered by id=eq.<job id>"


def _change_id(change: dict[str, Any]) -> int:
    """A subscription's id, the same for the same filter (the real server derives its ids from the filter, too)."""
    key = json.dumps([change.get("event"), change.get("schema"), change.get("table"), change.get("filter")])
    return zlib.crc32(key.encode())


@dataclass(eq=False)
class Delivery:
    """One hub subscription of a channel, released exactly once (by its task's end or by the leave;
    a task cancelled before it ran never reaches its own ``finally``)."""

    hub: EventHub
    sub: Subscription
    owner_id: str
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.hub.unsubscribe(self.sub, self.owner_id)


@dataclass(eq=False)
class Channel:
    topic: str
    join_ref: str | None
    deliveries: list[Delivery] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


@dataclass(eq=False)
class Connection:
    ws: WebSocket
    vsn: str
    db: Database
    hub: EventHub
    settings: Settings
    principal: Principal | None  # from the socket's apikey; a join's access_token may name another
    channels: dict[str, Channel] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, join_ref: str | None, ref: str | None, topic: str, event: str, payload: Any) -> None:
        if self.vsn == VSN_2:
            frame: Any = [join_ref, ref, topic, event, payload]
        else:
            frame = {"join_ref": join_ref, "ref": ref, "topic": topic, "event": event, "payload": payload}
        text = json.dumps(frame, ensure_ascii=False, separators=(",", ":"))
        async with self.lock:  # one frame at a time: the channels' delivery tasks share the socket
            await self.ws.send_text(text)

    async def reply(self, msg: dict[str, Any], status: str, response: dict[str, Any]) -> None:
        await self.send(
            msg["join_ref"], msg["ref"], msg["topic"], "phx_reply", {"status": status, "response": response}
        )


def _decode(vsn: str, text: str) -> dict[str, Any] | None:
    """One client frame as {join_ref, ref, topic, event, payload}, or None when it is not one."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if vsn == VSN_2:
        if not isinstance(data, list) or len(data) != 5:
            return None
        join_ref, ref, topic, event, payload = data
    else:
        if not isinstance(data, dict):
            return None
        join_ref, ref = data.get("join_ref"), data.get("ref")
        topic, event, payload = data.get("topic"), data.get("event"), data.get("payload")
    if not isinstance(topic, str) or not isinstance(event, str):
        return None
    refs = [r if r is None else str(r) for r in (join_ref, ref)]
    return {"join_ref": refs[0], "ref": refs[1], "topic": topic, "event": event, "payload": payload or {}}


async def _principal(db: Database, token: str | None) -> Principal | None:
    if not token:
        return None
    return recently_authenticated(db, token) or await anyio.to_thread.run_sync(authenticate, db, token)


def frame_event(frame: Frame) -> dict[str, Any]:
    """The event a hub frame carries (the hub encodes each event once, as SSE, for every stream)."""
    for line in frame.data.decode("utf-8").splitlines():
        if line.startswith("data:"):
            value = json.loads(line[5:].strip())
            assert isinstance(value, dict)
            return value
    raise ValueError(f"frame {frame.seq} carries no data")


def apply_event(row: dict[str, Any], event: dict[str, Any]) -> None:
    """The row as it was right after this event's change (every event is one update of the job
    row; its data is the job's snapshot at that commit)."""
    data = event.get("data") or {}
    at = datetime.fromisoformat(str(event["created_at"]).replace("Z", "+00:00"))
    for key in ("status", "progress", "current_stage", "metrics", "error"):
        if key in data:
            row[key] = data[key]
    row["updated_at"] = at
    status = row.get("status")
    if row.get("started_at") is None and status != JobStatus.pending.value:
        row["started_at"] = at  # the claim sets it at its own commit
    if status in {s.value for s in JobStatus if s.terminal} and row.get("completed_at") is None:
        row["completed_at"] = at


def change_payload(ids: list[int], row: dict[str, Any], commit: str) -> dict[str, Any]:
    return {
        "ids": ids,
        "data": {
            "schema": "public",
            "table": "discovery_jobs",
            "commit_timestamp": commit,
            "type": "UPDATE",
            "columns": job_columns(),
            "record": record(DISCOVERY_JOBS, row),
            "old_record": {"id": row["id"]},
            "errors": None,
        },
    }


async def _deliver(conn: Connection, channel: Channel, delivery: Delivery, ids: list[int], row: dict[str, Any]) -> None:
    """One subscription's changes, until the job's terminal one; then nothing more can come."""
    try:
        while True:
            frame = await delivery.sub.queue.get()
            event = frame_event(frame)
            apply_event(row, event)
            await conn.send(
                None, None, channel.topic, "postgres_changes", change_payload(ids, row, event["created_at"])
            )
            if frame.terminal:
                return
    except (WebSocketDisconnect, RuntimeError, OSError):  # the client is gone; the socket's loop cleans up
        return
    except Exception:
        log.exception("realtime delivery on %s failed", channel.topic)
    finally:
        delivery.release()


def _accepted(changes: Any) -> tuple[list[dict[str, Any]], str | None]:
    """The join's postgres_changes, each with its id, or the reason one cannot be served."""
    if changes is None:
        return [], None
    if not isinstance(changes, list) or len(changes) > 10:
        return [], "postgres_changes must be a list of at most 10 subscriptions"
    out = []
    for change in changes:
        if not isinstance(change, dict):
            return [], "each postgres_changes subscription must be an object"
        event, schema, table, flt = (change.get(k) for k in ("event", "schema", "table", "filter"))
        if event not in ("UPDATE", "*") or schema != "public" or table != "discovery_jobs":
            return [], _SUPPORTED
        if not isinstance(flt, str) or not _FILTER.fullmatch(flt) or parse_id(flt[6:]) is None:
            return [], _SUPPORTED
        accepted = {"event": event, "schema": schema, "table": table, "filter": flt}
        out.append({**accepted, "id": _change_id(accepted)})
    return out, None


async def _join(conn: Connection, msg: dict[str, Any]) -> None:
    topic = msg["topic"]
    if topic in conn.channels:  # Phoenix: a second join of a topic replaces the first
        await _leave_channel(conn, topic)
    if len(conn.channels) >= MAX_CHANNELS:
        await conn.reply(msg, "error", {"reason": f"at most {MAX_CHANNELS} channels per connection"})
        return
    payload: dict[str, Any] = msg["payload"] if isinstance(msg["payload"], dict) else {}
    config: dict[str, Any] = payload["config"] if isinstance(payload.get("config"), dict) else {}
    changes, problem = _accepted(config.get("postgres_changes"))
    if problem:
        await conn.reply(msg, "error", {"reason": problem})
        return
    token = payload.get("access_token")
    principal = conn.principal
    if isinstance(token, str) and token:
        principal = await _principal(conn.db, token)
        if principal is None:
            await conn.reply(msg, "error", {"reason": "unknown or revoked API key or session token"})
            return
    channel = Channel(topic, msg["join_ref"])
    by_job: dict[str, list[int]] = {}
    for change in changes:
        by_job.setdefault(str(parse_id(change["filter"][6:])), []).append(change["id"])
    starts: list[tuple[Delivery, list[int], dict[str, Any]]] = []
    try:
        for job_id, ids in by_job.items():
            if principal is None:
                break  # no identity, no rows: accepted, and silent
            owner = principal.user_id
            try:
                job = await anyio.to_thread.run_sync(queue.get_job, conn.db, job_id, owner)
            except NotFound:
                continue  # not the caller's: accepted, and silent
            if job.status.terminal:
                continue  # it will not change again: nothing to wait for, no stream held
            if conn.hub.streams_of(owner) >= conn.settings.streams_per_owner:
                for delivery in channel.deliveries:
                    delivery.release()
                limit = conn.settings.streams_per_owner
                await conn.reply(msg, "error", {"reason": f"at most {limit} open event streams per caller"})
                return
            # From the job as read now: its later events are each one change, none missed.
            sub = await conn.hub.subscribe(job.id, owner, job.event_seq, job.event_seq)
            delivery = Delivery(conn.hub, sub, owner)
            channel.deliveries.append(delivery)
            starts.append((delivery, ids, job_row(job, session_user_id(principal.kind, principal.name))))
    except BaseException:  # e.g. the database went away: hold no stream for a channel that never opened
        for delivery in channel.deliveries:
            delivery.release()
        raise
    conn.channels[topic] = channel  # from here on, a leave or the socket's end releases its streams
    await conn.reply(msg, "ok", {"postgres_changes": changes} if changes else {})
    if changes:
        status = {"message": "Subscribed to PostgreSQL", "status": "ok", "extension": "postgres_changes"}
        await conn.send(msg["join_ref"], None, topic, "system", {**status, "channel": topic.removeprefix("realtime:")})
    for delivery, ids, row in starts:
        channel.tasks.append(asyncio.create_task(_deliver(conn, channel, delivery, ids, row)))


async def _leave_channel(conn: Connection, topic: str) -> None:
    channel = conn.channels.pop(topic, None)
    if channel is None:
        return
    for task in channel.tasks:
        task.cancel()
    await asyncio.gather(*channel.tasks, return_exceptions=True)
    for delivery in channel.deliveries:
        delivery.release()


async def _handle(conn: Connection, msg: dict[str, Any]) -> None:
    topic, event = msg["topic"], msg["event"]
    if topic == "phoenix" and event == "heartbeat":
        await conn.reply(msg, "ok", {})
    elif event == "phx_join":
        await _join(conn, msg)
    elif topic not in conn.channels:
        await conn.reply(msg, "error", {"reason": "unmatched topic"})
    elif event == "phx_leave":
        await _leave_channel(conn, topic)
        await conn.reply(msg, "ok", {})
    elif event == "access_token":
        return  # the server answers nothing to a token refresh; the identity stays the join's
    else:
        await conn.reply(msg, "error", {"reason": f"{event} is not supported here ({_SUPPORTED})"})


async def _serve(conn: Connection, receive: Callable[[], Awaitable[MutableMapping[str, Any]]]) -> None:
    while True:
        try:
            message = await asyncio.wait_for(receive(), timeout=IDLE_SECONDS)
        except TimeoutError:
            await conn.ws.close(code=1000, reason="heartbeat timeout")
            return
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            continue  # binary: 2.0.0's broadcast encoding, not supported
        if len(text) > MAX_FRAME_CHARS:
            await conn.ws.close(code=1009, reason="message too big")
            return
        msg = _decode(conn.vsn, text)
        if msg is not None:
            await _handle(conn, msg)


@router.websocket("/realtime/v1/websocket")
async def realtime_socket(ws: WebSocket) -> None:
    state = ws.app.state
    vsn = ws.query_params.get("vsn") or VSN_1
    if vsn not in (VSN_1, VSN_2):
        await ws.close(code=1008, reason=f"unsupported vsn {vsn[:20]}; use 1.0.0 or 2.0.0")
        return
    principal = None
    apikey = ws.query_params.get("apikey")
    if apikey:
        principal = await _principal(state.db, apikey)
        if principal is None:  # refused at the handshake (403), as the original's gateway refused a bad key
            await ws.close(code=1008, reason="unknown or revoked API key or session token")
            return
    await ws.accept()
    conn = Connection(ws, vsn, state.db, state.hub, state.settings, principal)
    try:
        await _serve(conn, ws.receive)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        for topic in list(conn.channels):
            with contextlib.suppress(Exception):
                await _leave_channel(conn, topic)
