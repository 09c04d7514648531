"""Group commit for the async edges: one thread writes waiting submissions together.

Concurrent API requests would otherwise each take a thread hop and queue on
the database's write lock for a transaction of their own. Here a request
hands its submission to one writer thread and awaits the outcome; the thread
takes everything that is waiting (up to ``max_batch``) and writes it with
``write_submissions``: one transaction, one statement per table. With one
request in flight it is written at once, alone; under load the groups grow
by themselves, with no timer to wait for.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import defaultdict
from typing import Any

from prospectpro.config import Settings
from prospectpro.services.submissions import Outcome, Submission, SubmitRequest, write_submissions
from prospectpro.store.db import Database

log = logging.getLogger(__name__)

_Waiting = tuple[SubmitRequest, asyncio.AbstractEventLoop, "asyncio.Future[Submission]"]


class Submitter:
    def __init__(self, db: Database, settings: Settings, *, max_batch: int = 200) -> None:
        self.db = db
        self.settings = settings
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Waiting | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        # Taken to queue a submission and to queue the end marker, so that
        # nothing is queued behind the marker, where nobody would answer it.
        self._open = threading.Lock()
        self._running = False

    def start(self) -> Submitter:
        self._thread = threading.Thread(target=self._run, name="prospectpro-submitter", daemon=True)
        with self._open:
            self._running = True
        self._thread.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        """Write what is already waiting, then end the thread; later submissions are refused."""
        with self._open:
            if not self._running:
                return
            self._running = False
            self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    async def submit(self, request: SubmitRequest) -> Submission:
        """The submission, or the error that refused it (raised)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Submission] = loop.create_future()
        with self._open:
            if not self._running:
                raise RuntimeError("the submitter is not running")
            self._queue.put((request, loop, future))
        return await future

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group, stopping = [first], False
            while len(group) < self.max_batch:
                try:
                    waiting = self._queue.get_nowait()
                except queue.Empty:
                    break
                if waiting is None:
                    stopping = True
                    break
                group.append(waiting)
            self._write(group)
            if stopping:
                return

    def _write(self, group: list[_Waiting]) -> None:
        # write_submissions answers each request with its own outcome, a database
        # failure included (that one reaches every request of the transaction it
        # failed, as an OperationalError: the API's 503). Only if it raises, it
        # answered none, so the one error is each request's.
        outcomes: list[Outcome]
        try:
            outcomes = write_submissions(self.db, self.settings, [request for request, _, _ in group])
            if len(outcomes) != len(group):
                raise RuntimeError(f"{len(outcomes)} outcomes for {len(group)} submissions")
        except Exception as exc:
            log.exception("writing %d submissions failed", len(group))
            outcomes = [exc] * len(group)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Outcome]]] = defaultdict(list)
        for (_, loop, future), outcome in zip(group, outcomes, strict=True):
            by_loop[loop].append((future, outcome))
        for loop, settled in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, settled)
            except RuntimeError:  # that loop has closed: nobody is waiting any more
                pass


def _settle(settled: list[tuple[asyncio.Future[Any], Outcome]]) -> None:
    for future, outcome in settled:
        if future.done():  # the request was cancelled (client gone); its submission stands
            continue
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
