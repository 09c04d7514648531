"""Job change -> supabase-js postgres_changes callback, p50/p99, against our SSE stream in the same run.

Per repetition, a fresh data dir with one owner (API key). This process submits one
job, claims it and writes N tick changes at R/s through JobRun.change(), stamping
time.time() right after each commit returns (bench/sse_common.Writer). Two clients
watch the same job at the same time:

  realtime: the real @supabase/supabase-js (Node, tests/compat/js/latency_client.mjs),
            the original hook's channel('discovery_jobs:'+id).on('postgres_changes', …);
            it stamps each callback (performance.timeOrigin + performance.now()).
  sse:      GET /api/v1/jobs/{id}/events (httpx + httpx_sse in a thread of this process).

latency = arrival - commit stamp (one machine, one wall clock). Both paths read the
same hub; realtime adds the row mapping, the Phoenix frame and the Node client.

  cross-process: `prospectpro serve --workers 0` in its own process; it sees the writes
                 by polling every PROSPECTPRO_SSE_POLL_INTERVAL (default 0.1 s).
  in-process:    create_app(settings, workers=0, db=db) under uvicorn in a thread here;
                 the writes' notifier wakes the hub at once.

    .venv/bin/python bench/realtime_latency.py [--reps 3] [-n 200] [--rate 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from http_common import PROSPECTPRO, ROOT, free_port, med, percentile, server_env, start, stop, table, versions
from sse_common import Writer, make_settings, prepare, running_jobs
from sse_latency import Client as SseClient

from prospectpro.jobs import queue

JS_DIR = ROOT / "tests" / "compat" / "js"


class RealtimeClient(threading.Thread):
    """The Node client; its lines are read here as they come."""

    def __init__(self, base: str, key: str, job_id: str) -> None:
        super().__init__(name="realtime-client", daemon=True)
        node = shutil.which("node") or "node"
        major = int(subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()[1:].split(".")[0])
        flags = ["--experimental-websocket"] if major < 22 else []
        env = {**os.environ, "BASE_URL": base, "KEY": key, "JOB_ID": job_id}
        self.proc = subprocess.Popen([node, *flags, str(JS_DIR / "latency_client.mjs")], cwd=JS_DIR, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.ready = threading.Event()
        self.arrivals: list[tuple[str, float, str]] = []  # (metrics.t, arrival s, status)

    def run(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("READY"):
                self.ready.set()
            elif line.startswith("CHANGE "):
                _, t, arrival, status = line.split()
                self.arrivals.append((t, float(arrival) / 1000, status))
        self.ready.set()

    def finish(self, timeout: float) -> None:
        self.join(timeout)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        if self.proc.returncode != 0:
            stderr = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"realtime client exited {self.proc.returncode}: {stderr[-2000:]}")


def measure(db, settings, base: str, key: str, owner: str, n: int, rate: float) -> dict:
    (run,) = running_jobs(db, settings, owner, 1)
    job_id = run.job.id
    rt = RealtimeClient(base, key, job_id)
    rt.start()
    sse = SseClient(base, key, job_id, timeout=60)
    sse.start()
    if not rt.ready.wait(30) or rt.proc.poll() is not None:
        raise RuntimeError("realtime client did not subscribe")
    if not sse.ready.wait(20) or sse.error:
        raise RuntimeError(f"SSE client did not connect: {sse.error!r}")
    writer = Writer([run], per_job=n, rate=rate)
    wt = writer.start()
    wt.join(n / rate + 60)
    sse.join(30)
    rt.finish(30)
    if writer.error:
        raise writer.error
    if sse.error:
        raise RuntimeError(f"SSE client failed: {sse.error!r}")
    # A tick's metrics carry the time its write began: that names the event (and its commit stamp).
    by_t = {repr(e.data["metrics"]["t"]): e.seq for e in queue.list_events(db, job_id, after=0, limit=100_000)
            if e.kind == "tick"}
    sse_lat = [(t - writer.commits[(job_id, s)]) * 1000 for s, t, k in sse.arrivals if k == "tick"]
    rt_lat = []
    for t, arrival, status in rt.arrivals:
        # The terminal change keeps the last tick's t (metrics merge): only ticks are matched.
        seq = by_t.get(repr(float(t))) if t != "-" and status == "processing" else None
        if seq is not None:
            rt_lat.append((arrival - writer.commits[(job_id, seq)]) * 1000)
    ticks = len(by_t)
    return dict(rt_p50=percentile(rt_lat, 50), rt_p99=percentile(rt_lat, 99), rt_n=len(rt_lat),
                sse_p50=percentile(sse_lat, 50), sse_p99=percentile(sse_lat, 99), sse_n=len(sse_lat),
                rt_lost=ticks - len(rt_lat), sse_lost=ticks - len(sse_lat), completed=rt.arrivals[-1][2])


def cross_process(n: int, rate: float) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="pp-rt-lat-"))
    proc = db = None
    try:
        settings = make_settings(tmp / "data")
        db, owner, key = prepare(settings)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start([PROSPECTPRO, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "0",
                      "--log-level", "warning"], env=server_env(settings.data_dir), ready_url=f"{base}/healthz")
        return measure(db, settings, base, key, owner, n, rate)
    finally:
        if proc is not None:
            stop(proc)
        if db is not None:
            db.dispose()
        shutil.rmtree(tmp, ignore_errors=True)


def in_process(n: int, rate: float) -> dict:
    from prospectpro.api.app import create_app

    tmp = Path(tempfile.mkdtemp(prefix="pp-rt-lat-"))
    db = server = thread = None
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
    ap.add_argument("-n", type=int, default=200, help="tick changes per run")
    ap.add_argument("--rate", type=float, default=20.0, help="changes per second")
    a = ap.parse_args()
    if not (JS_DIR / "node_modules" / "@supabase" / "supabase-js").is_dir():
        sys.exit(f"run `npm ci` in {JS_DIR} first")
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    print(f"# realtime_latency  {time.strftime('%Y-%m-%d %H:%M')}  {versions()}  node {node}")
    modes = {"cross-process (poll 0.1 s)": cross_process, "in-process (notifier)": in_process}
    rows: dict[str, list[dict]] = {name: [] for name in modes}
    for rep in range(1, a.reps + 1):
        for name, fn in modes.items():
            r = fn(a.n, a.rate)
            rows[name].append(r)
            print(f"rep {rep} {name}: realtime p50 {r['rt_p50']:.1f} p99 {r['rt_p99']:.1f} ms ({r['rt_n']} changes, "
                  f"lost {r['rt_lost']}); sse p50 {r['sse_p50']:.1f} p99 {r['sse_p99']:.1f} ms ({r['sse_n']}, "
                  f"lost {r['sse_lost']}); last change {r['completed']}", flush=True)
    print()
    print(f"{a.n} changes at {a.rate:g}/s per run, both clients on the same job; median (min–max) over {a.reps} runs")
    print(table(["path", "realtime p50 ms", "realtime p99 ms", "SSE p50 ms", "SSE p99 ms", "p50 ratio", "p99 ratio",
                 "lost (rt/sse)"],
                [[name, med([r["rt_p50"] for r in g]), med([r["rt_p99"] for r in g]),
                  med([r["sse_p50"] for r in g]), med([r["sse_p99"] for r in g]),
                  med([r["rt_p50"] / r["sse_p50"] for r in g], 2), med([r["rt_p99"] / r["sse_p99"] for r in g], 2),
                  f"{sum(r['rt_lost'] for r in g)}/{sum(r['sse_lost'] for r in g)}"] for name, g in rows.items()]))


if __name__ == "__main__":
    main()
