"""Worker write -> event at an SSE client: p50/p99, cross-process (poll) and in-process (notifier).

Per repetition, a fresh data dir with one owner (API key). This process submits
one job, claims it (prospectpro.jobs.queue.claim) and writes N tick changes
through JobRun.change() at R/s, stamping time.time() right after each commit
returns; one SSE client (httpx + httpx_sse, in a thread of this process)
connected to GET /api/v1/jobs/{id}/events stamps each event's arrival.
latency = arrival - commit stamp (same clock). Then a terminal change ends the stream.

  cross-process: `prospectpro serve --workers 0` in its own process; it sees the
                 writes by polling every PROSPECTPRO_SSE_POLL_INTERVAL (default 0.1 s).
  in-process:    create_app(settings, workers=0, db=db) under uvicorn.Server in a
                 thread of this process; writes go through the same `db`, whose
                 notifier wakes the hub at once (client, server and writer share one GIL).

    .venv/bin/python bench/sse_latency.py [--reps 3] [-n 300] [--rate 20]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from http_common import (
    PROSPECTPRO,
    CpuMeter,
    free_port,
    med,
    percentile,
    server_env,
    start,
    stop,
    table,
    versions,
    wait_for_quiet,
)
from httpx_sse import connect_sse
from sse_common import Writer, make_settings, prepare, running_jobs


class Client(threading.Thread):
    def __init__(self, base: str, key: str, job_id: str, timeout: float) -> None:
        super().__init__(name="sse-client", daemon=True)
        self.url = f"{base}/api/v1/jobs/{job_id}/events"
        self.key = key
        self.timeout = timeout
        self.ready = threading.Event()
        self.arrivals: list[tuple[int, float, str]] = []  # (seq, arrival, kind)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.Client(timeout=httpx.Timeout(self.timeout, connect=10)) as c:
                with connect_sse(c, "GET", self.url, headers={"Authorization": f"Bearer {self.key}"}) as src:
                    src.response.raise_for_status()
                    for ev in src.iter_sse():
                        now = time.time()
                        if ev.event == "snapshot":
                            self.ready.set()
                            continue
                        body = json.loads(ev.data)
                        self.arrivals.append((body["seq"], now, body["kind"]))
                        if body["data"].get("status") in ("completed", "failed", "cancelled"):
                            return
        except BaseException as exc:
            self.error = exc
        finally:
            self.ready.set()


def measure(db, settings, base: str, key: str, owner: str, n: int, rate: float, server_pid: int = 0) -> dict:
    (run,) = running_jobs(db, settings, owner, 1)
    job_id = run.job.id
    client = Client(base, key, job_id, timeout=30)
    client.start()
    if not client.ready.wait(20) or client.error:
        raise RuntimeError(f"SSE client did not connect: {client.error!r}")
    writer = Writer([run], per_job=n, rate=rate)
    with CpuMeter(*([server_pid] if server_pid else [])) as cpu:
        wt = writer.start()
        wt.join(n / rate + 60)
        client.join(30)
    if writer.error:
        raise writer.error
    if client.error:
        raise RuntimeError(f"SSE client failed: {client.error!r}")
    seqs = [s for s, _, _ in client.arrivals]
    final = max(s for (_, s) in writer.commits)
    lost = len(set(range(1, final + 1)) - set(seqs))
    dup = len(seqs) - len(set(seqs))
    lat = [(t - writer.commits[(job_id, s)]) * 1000 for s, t, k in client.arrivals if k == "tick"]
    return dict(p50=percentile(lat, 50), p99=percentile(lat, 99), max=max(lat), n=len(lat), lost=lost, dup=dup,
                write_p50=percentile(writer.write_ms, 50), behind=writer.behind_s * 1000,
                foreign=cpu.foreign_cores)


def cross_process(n: int, rate: float) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="pp-sse-lat-"))
    proc = None
    db = None
    try:
        settings = make_settings(tmp / "data")
        db, owner, key = prepare(settings)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start([PROSPECTPRO, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "0",
                      "--log-level", "warning"], env=server_env(settings.data_dir), ready_url=f"{base}/healthz")
        return measure(db, settings, base, key, owner, n, rate, server_pid=proc.pid)
    finally:
        if proc is not None:
            stop(proc)
        if db is not None:
            db.dispose()
        shutil.rmtree(tmp, ignore_errors=True)


def in_process(n: int, rate: float) -> dict:
    from prospectpro.api.app import create_app

    tmp = Path(tempfile.mkdtemp(prefix="pp-sse-lat-"))
    db = None
    server = thread = None
    try:
        settings = make_settings(tmp / "data")
        db, owner, key = prepare(settings)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(settings, workers=0, db=db), host="127.0.0.1", port=port,
                                               log_level="warning", lifespan="on", access_log=False))
        thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("in-process server did not start")
            time.sleep(0.02)
        return measure(db, settings, f"http://127.0.0.1:{port}", key, owner, n, rate)
    finally:
        if server is not None:
            server.should_exit = True
            thread.join(15)
        if db is not None:
            db.dispose()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("-n", type=int, default=300, help="tick changes per run")
    ap.add_argument("--rate", type=float, default=20.0, help="changes per second")
    a = ap.parse_args()
    print(f"# sse_latency  {time.strftime('%Y-%m-%d %H:%M')}  {versions()}")
    rows: dict[str, list[dict]] = {"cross-process (poll 0.1 s)": [], "in-process (notifier)": []}
    for rep in range(1, a.reps + 1):
        busy = wait_for_quiet()
        for name, fn in (("cross-process (poll 0.1 s)", cross_process), ("in-process (notifier)", in_process)):
            r = fn(a.n, a.rate)
            rows[name].append(r)
            print(f"rep {rep} {name}: p50 {r['p50']:.1f} ms p99 {r['p99']:.1f} ms max {r['max']:.1f} ms, "
                  f"{r['n']} events, lost {r['lost']} dup {r['dup']}, other processes {r['foreign']:.2f} cores "
                  f"(machine busy before: {busy:.2f})", flush=True)
    print()
    print(f"{a.n} changes at {a.rate:g}/s per run; median (min–max) over {a.reps} runs")
    print(table(["path", "p50 ms", "p99 ms", "max ms", "events/run", "lost", "duplicated", "write txn p50 ms",
                 "other processes' CPU (cores)"],
                [[name, med([r["p50"] for r in g]), med([r["p99"] for r in g]), med([r["max"] for r in g]),
                  med([r["n"] for r in g], 0), sum(r["lost"] for r in g), sum(r["dup"] for r in g),
                  med([r["write_p50"] for r in g], 2), med([r["foreign"] for r in g], 2)] for name, g in rows.items()]))


if __name__ == "__main__":
    main()
