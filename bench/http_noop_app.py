"""Baselines for the HTTP benchmarks: plain FastAPI, no middleware, no database.

    POST /noop        -> 202 {"ok": true}            (bench/http_submit.py)
    GET  /sse?rate=R  -> text/event-stream; a counter (bench/sse_fanout.py)
                         with the send time, R events/s

Run it like the peers were: uvicorn http_noop_app:app --no-access-log (from bench/).
"""

from __future__ import annotations

import asyncio
import json
import time

from fastapi import FastAPI
from fastapi.responses import StreamingResponse

app = FastAPI()


@app.post("/noop", status_code=202)
async def noop() -> dict[str, bool]:
    return {"ok": True}


@app.get("/sse")
async def sse(rate: float = 2.0, count: int = 1000) -> StreamingResponse:
    async def counter():  # type: ignore[no-untyped-def]
        yield b"event: snapshot\ndata: {}\n\n"
        start = time.monotonic()
        for n in range(1, min(count, 100_000) + 1):
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            body = json.dumps({"seq": n, "t": time.time()}, separators=(",", ":"))
            yield f"id: {n}\ndata: {body}\n\n".encode()

    return StreamingResponse(counter(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
