"""The event stream of one job (Server-Sent Events).

Wire format: first ``event: snapshot`` with the job as it is now, then every
event of the job's log after the client's position, each as a default
("message") event whose ``id:`` is its sequence number, so a browser's
EventSource resumes with Last-Event-ID on its own. A comment line keeps the
connection alive; the stream ends after the terminal event.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi.sse import format_sse_event

from prospectpro.api.hub import EventHub
from prospectpro.jobs.model import Job

RETRY_MS = 2000
KEEPALIVE = b": keep-alive\n\n"


def _json(data: object) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


async def job_stream(
    hub: EventHub, job: Job, owner_id: str, after: int, keepalive_seconds: float
) -> AsyncIterator[bytes]:
    sub = await hub.subscribe(job.id, owner_id, after, job.event_seq)
    try:
        yield format_sse_event(event="snapshot", data_str=_json(job.to_public()), retry=RETRY_MS)
        if job.status.terminal and after >= job.event_seq:
            return
        while True:
            try:
                frame = await asyncio.wait_for(sub.queue.get(), timeout=keepalive_seconds)
            except TimeoutError:
                yield KEEPALIVE
                continue
            yield frame.data
            if frame.terminal:
                return
    finally:
        hub.unsubscribe(sub, owner_id)
