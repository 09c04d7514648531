"""Reading a job's event log as it grows (CLI ``--follow``, the progress bar).

Writers in this process wake readers at once through the database's
notifier; writers in other processes by LISTEN/NOTIFY on PostgreSQL
(``store/listen.py``), and by a short poll on SQLite (the poll stays on
PostgreSQL too, as the safety net while the LISTEN connection is down).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from prospectpro.domain.status import JobStatus
from prospectpro.jobs.model import JobEvent
from prospectpro.jobs.queue import list_events
from prospectpro.store import listen
from prospectpro.store.db import Database


def is_terminal_event(event: JobEvent) -> bool:
    status = event.data.get("status")
    return status in {s.value for s in JobStatus if s.terminal}


def follow_events(
    db: Database,
    job_id: str,
    *,
    after: int = 0,
    poll_interval: float = 0.2,
    stop: threading.Event | None = None,
) -> Iterator[JobEvent]:
    """Yield every event after ``after`` in order, then new ones, until the terminal event."""
    wake = threading.Event()

    def on_change(changed_id: str) -> None:
        if changed_id == job_id:
            wake.set()

    unsubscribe = db.notifier.subscribe(on_change)
    listener = listen.acquire(db)
    unlisten = listener.on_event(lambda changed_id, _seq: on_change(changed_id)) if listener is not None else None
    try:
        while stop is None or not stop.is_set():
            wake.clear()
            events = list_events(db, job_id, after=after)
            for event in events:
                after = event.seq
                yield event
                if is_terminal_event(event):
                    return
            if not events:
                wake.wait(poll_interval)
    finally:
        unsubscribe()
        if unlisten is not None:
            unlisten()
        listen.release(db, listener)
