"""Fan-out of job events to the event streams open in this process.

One channel per watched job. A change is noticed at once when a worker in
this process announces its commit through the database notifier, and on
PostgreSQL when any process's event insert is NOTIFYed (``store/listen.py``:
one listening connection per process, payload ``<job id>:<seq>``); otherwise
(SQLite, or while the LISTEN connection is down) by one poll per tick over all
watched jobs. The channel then reads the new events once and hands them to
every subscriber, so 500 clients watching one job cost one query, not 500.
While listening, the poll is only a slow safety net; after every (re)connect
of the listener every channel reads what it may have missed from the log.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field

import anyio.to_thread
from fastapi.sse import format_sse_event

from prospectpro.jobs.events import is_terminal_event
from prospectpro.jobs.model import JobEvent
from prospectpro.jobs.queue import list_events
from prospectpro.jobs.stats import event_seqs
from prospectpro.store import listen
from prospectpro.store.db import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Frame:
    """One event as it goes on the wire, encoded once for every stream."""

    seq: int
    terminal: bool
    data: bytes

    @classmethod
    def of(cls, event: JobEvent) -> Frame:
        payload = json.dumps(event.to_public(), ensure_ascii=False, separators=(",", ":"))
        return cls(event.seq, is_terminal_event(event), format_sse_event(id=str(event.seq), data_str=payload))


@dataclass(eq=False)
class Subscription:
    job_id: str
    after: int
    queue: asyncio.Queue[Frame] = field(default_factory=asyncio.Queue)

    def offer(self, events: list[Frame]) -> None:
        for event in events:
            if event.seq > self.after:
                self.after = event.seq
                self.queue.put_nowait(event)


@dataclass(eq=False)
class Channel:
    job_id: str
    last_seq: int = 0
    subscribers: set[Subscription] = field(default_factory=set)
    joining: int = 0  # subscribers waiting for the lock; the channel must outlive them
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class EventHub:
    def __init__(self, db: Database, poll_interval: float = 0.1, safety_poll_interval: float = 2.0) -> None:
        self.db = db
        self.poll_interval = poll_interval
        self.safety_poll_interval = safety_poll_interval  # while the LISTEN connection is up
        self._listener: listen.PgListener | None = None
        self._unlisten: list[object] = []
        self._channels: dict[str, Channel] = {}
        self._streams_by_owner: dict[str, int] = defaultdict(int)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        # The loop keeps only weak references to tasks: a refresh nobody holds
        # could be collected before it finishes (see asyncio.create_task).
        self._refreshes: set[asyncio.Task[None]] = set()
        self._unsubscribe: object = None

    # -- lifecycle (inside the server's event loop) -----------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._unsubscribe = self.db.notifier.subscribe(self._on_commit)
        self._listener = listen.acquire(self.db)
        if self._listener is not None:
            self._unlisten = [self._listener.on_event(self._on_event), self._listener.on_connect(self._on_connect)]
        self._task = asyncio.create_task(self._poll_forever())

    async def stop(self) -> None:
        if callable(self._unsubscribe):
            self._unsubscribe()
        for unlisten in self._unlisten:
            unlisten()  # type: ignore[operator]
        self._unlisten = []
        listen.release(self.db, self._listener)
        self._listener = None
        self._loop = None  # a commit announced from now on starts nothing
        tasks = [*self._refreshes, *([self._task] if self._task is not None else [])]
        for task in tasks:
            task.cancel()
        # Waits for each to end; their CancelledError (or a refresh's own error) stops nothing here.
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def stream_count(self) -> int:
        return sum(self._streams_by_owner.values())

    def streams_of(self, owner_id: str) -> int:
        return self._streams_by_owner.get(owner_id, 0)

    # -- subscribing -------------------------------------------------------
    async def subscribe(self, job_id: str, owner_id: str, after: int, head: int | None = None) -> Subscription:
        """Events after ``after`` arrive in the subscription's queue, in order, each once.

        ``head`` is the job's last sequence number as the caller read it; a
        new channel starts there (or at ``after`` if lower), never beyond
        the log, so no later event is skipped for anyone.
        """
        sub = Subscription(job_id=job_id, after=after)
        channel = self._channels.get(job_id)
        if channel is None:
            channel = self._channels[job_id] = Channel(job_id=job_id, last_seq=after if head is None else min(after, head))
        self._streams_by_owner[owner_id] += 1
        channel.joining += 1
        try:
            # Under the channel's lock, so no refresh runs between reading
            # this subscriber's backlog and adding it to the channel.
            async with channel.lock:
                backlog = await self._read(job_id, after)
                if backlog and backlog[-1].seq > channel.last_seq:
                    channel.last_seq = backlog[-1].seq
                    for other in channel.subscribers:  # they must not miss what the channel now skips
                        other.offer(backlog)
                sub.offer(backlog)
                channel.subscribers.add(sub)
        except BaseException:  # e.g. the client left while we waited: count nothing
            channel.joining -= 1
            self.unsubscribe(sub, owner_id)
            raise
        channel.joining -= 1
        return sub

    def unsubscribe(self, sub: Subscription, owner_id: str) -> None:
        channel = self._channels.get(sub.job_id)
        if channel is not None:
            channel.subscribers.discard(sub)
            if not channel.subscribers and not channel.joining:
                del self._channels[sub.job_id]
        self._streams_by_owner[owner_id] -= 1
        if self._streams_by_owner[owner_id] <= 0:
            del self._streams_by_owner[owner_id]

    # -- noticing changes --------------------------------------------------
    def _on_commit(self, job_id: str) -> None:
        """Called from a worker thread after its commit."""
        loop = self._loop
        if loop is not None and job_id in self._channels:
            loop.call_soon_threadsafe(self._spawn_refresh, job_id)

    def _on_event(self, job_id: str, seq: int) -> None:
        """Called from the LISTEN thread: an event of ``job_id`` was committed, by any process."""
        loop = self._loop
        if loop is not None and job_id in self._channels:
            loop.call_soon_threadsafe(self._spawn_refresh, job_id, seq)

    def _on_connect(self) -> None:
        """Called from the LISTEN thread after each (re)connect: read whatever was written while it was away."""
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._catch_up)

    def _catch_up(self) -> None:
        for job_id in list(self._channels):
            self._spawn_refresh(job_id)

    @property
    def listening(self) -> bool:
        return self._listener is not None and self._listener.connected.is_set()

    def _spawn_refresh(self, job_id: str, seq: int | None = None) -> None:
        if self._loop is None:  # stopped between the announcement and now
            return
        channel = self._channels.get(job_id)
        if channel is None or (seq is not None and seq <= channel.last_seq):
            return  # already read (e.g. announced in-process, then NOTIFYed too)
        task = asyncio.create_task(self._refresh(job_id, seq))
        self._refreshes.add(task)
        task.add_done_callback(self._refresh_done)

    def _refresh_done(self, task: asyncio.Task[None]) -> None:
        self._refreshes.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("event hub refresh failed", exc_info=error)

    async def _refresh(self, job_id: str, seq: int | None = None) -> None:
        channel = self._channels.get(job_id)
        if channel is None:
            return
        async with channel.lock:
            if seq is not None and seq <= channel.last_seq:
                return  # a refresh that waited before this one read it: many NOTIFYs, one query
            events = await self._read(job_id, channel.last_seq)
            if events:
                channel.last_seq = events[-1].seq
                for sub in list(channel.subscribers):
                    sub.offer(events)

    async def _read(self, job_id: str, after: int) -> list[Frame]:
        def read() -> list[Frame]:
            return [Frame.of(e) for e in list_events(self.db, job_id, after=after, limit=10_000)]

        return await anyio.to_thread.run_sync(read)

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.safety_poll_interval if self.listening else self.poll_interval)
            if not self._channels:
                continue
            try:
                seqs = await anyio.to_thread.run_sync(event_seqs, self.db, list(self._channels))
            except Exception:
                log.exception("event hub poll failed")
                continue
            changed = [
                job_id
                for job_id, seq in seqs.items()
                if (channel := self._channels.get(job_id)) is not None and seq > channel.last_seq
            ]
            await asyncio.gather(*(self._refresh(job_id) for job_id in changed))
