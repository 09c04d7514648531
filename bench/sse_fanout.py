"""500 SSE clients on one API process (50 running jobs x 10 clients): memory, delivery latency, loss.

Per repetition, a fresh data dir with one owner (API key) and
`prospectpro serve --workers 0` in its own process (it sees the writes by
polling, every 0.1 s). This process submits 50 jobs and claims them as a
worker would, opens 10 SSE clients per job (asyncio + httpx.AsyncClient,
connection limit 600, all in this process), waits until every client has its
snapshot, then writes --per-job tick changes to every job, round-robin, at
--rate changes/s in total (default 100/s = 2/s per job = 1,000 deliveries/s),
stamping time.time() after each commit; each client stamps each arrival.
Finally every job is completed, which ends its streams.

Server memory: VmRSS of the server process from /proc (idle after start = the
"0 clients" baseline; with all 500 connected, before any write; sampled every
0.25 s while writing) and VmHWM (the kernel's peak RSS) at the end.
Per client: lost = seqs 1..last of its job that never arrived; duplicated =
seqs that arrived more than once (both must be 0).

Baseline in the same run: `uvicorn http_noop_app:app --no-access-log`, 500
clients on GET /sse, a counter that emits the same per-client event rate,
each event carrying its send time.

    .venv/bin/python bench/sse_fanout.py [--reps 3] [--jobs 50] [--clients-per-job 10] [--rate 100] [--per-job 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from http_common import (
    BENCH,
    PROSPECTPRO,
    PY,
    CpuMeter,
    free_port,
    med,
    percentile,
    proc_status,
    raise_nofile,
    server_env,
    start,
    stop,
    table,
    versions,
    wait_for_quiet,
)
from httpx_sse import aconnect_sse
from sse_common import Writer, make_settings, prepare, running_jobs

TERMINAL = ("completed", "failed", "cancelled")


@dataclass
class Stream:
    key: str  # job id (or "baseline")
    arrivals: list[tuple[int, float, float]] = field(default_factory=list)  # seq, arrival, sent-stamp (baseline)
    connected: bool = False
    error: str = ""


async def follow(ac: httpx.AsyncClient, url: str, headers: dict[str, str], s: Stream, connected: asyncio.Event,
                 counter: list[int], total: int, until: int | None) -> None:
    try:
        async with aconnect_sse(ac, "GET", url, headers=headers) as src:
            src.response.raise_for_status()
            async for ev in src.aiter_sse():
                now = time.time()
                if ev.event == "snapshot":
                    s.connected = True
                    counter[0] += 1
                    if counter[0] == total:
                        connected.set()
                    continue
                body = json.loads(ev.data)
                s.arrivals.append((body["seq"], now, body.get("t", 0.0)))
                if until is not None and body["seq"] >= until:
                    return
                if body.get("data", {}).get("status") in TERMINAL:
                    return
    except Exception as exc:  # counted, not raised: one failed client must not hide the others' numbers
        s.error = f"{type(exc).__name__}: {exc}"
    finally:
        if not s.connected:
            counter[0] += 1
            if counter[0] == total:
                connected.set()


class RssSampler(threading.Thread):
    def __init__(self, pid: int, every: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peak = 0.0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                self.peak = max(self.peak, proc_status(self.pid)["VmRSS"])
            except (FileNotFoundError, KeyError):
                return
            self.halt.wait(self.every)


def client_pool(n: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(limits=httpx.Limits(max_connections=n + 100, max_keepalive_connections=n + 100),
                             timeout=httpx.Timeout(60, connect=30))


async def open_all(urls: list[tuple[str, dict[str, str], Stream, int | None]], ac: httpx.AsyncClient,
                   connect_timeout: float) -> tuple[list[asyncio.Task[None]], float]:
    connected = asyncio.Event()
    counter = [0]
    t0 = time.monotonic()
    tasks = [asyncio.create_task(follow(ac, u, h, s, connected, counter, len(urls), until)) for u, h, s, until in urls]
    try:
        await asyncio.wait_for(connected.wait(), connect_timeout)
    except TimeoutError:
        pass
    return tasks, time.monotonic() - t0


def summarize(streams: list[Stream], expected: dict[str, int], latency_of) -> dict:  # type: ignore[no-untyped-def]
    lat: list[float] = []
    lost = dup = bad_clients = 0
    for s in streams:
        seqs = [a[0] for a in s.arrivals]
        l_ = len(set(range(1, expected[s.key] + 1)) - set(seqs))
        d_ = len(seqs) - len(set(seqs))
        lost += l_
        dup += d_
        bad_clients += bool(l_ or d_ or s.error)
        lat += [x for x in (latency_of(s.key, a) for a in s.arrivals) if x is not None]
    errors = sorted({s.error for s in streams if s.error})
    return dict(p50=percentile(lat, 50), p99=percentile(lat, 99), max=max(lat) if lat else float("nan"),
                deliveries=len(lat), lost=lost, dup=dup, bad_clients=bad_clients, errors=errors[:3],
                connected=sum(s.connected for s in streams))


async def ours(jobs: int, per: int, rate: float, per_job: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="pp-sse-fan-"))
    proc = None
    db = None
    try:
        settings = make_settings(tmp / "data")
        db, owner, key = prepare(settings)
        runs = running_jobs(db, settings, owner, jobs)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start([PROSPECTPRO, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "0",
                      "--log-level", "warning"], env=server_env(settings.data_dir), ready_url=f"{base}/healthz")
        await asyncio.sleep(1.0)
        idle = proc_status(proc.pid)["VmRSS"]
        headers = {"Authorization": f"Bearer {key}"}
        streams = [Stream(r.job.id) for r in runs for _ in range(per)]
        async with client_pool(len(streams)) as ac:
            tasks, connect_s = await open_all(
                [(f"{base}/api/v1/jobs/{s.key}/events", headers, s, None) for s in streams], ac, 120)
            await asyncio.sleep(1.0)
            connected_rss = proc_status(proc.pid)["VmRSS"]
            sampler = RssSampler(proc.pid)
            sampler.start()
            writer = Writer(runs, per_job=per_job, rate=rate)
            with CpuMeter(proc.pid) as cpu:
                wt = writer.start()
                while wt.is_alive():
                    await asyncio.sleep(0.1)
                done, pending = await asyncio.wait(tasks, timeout=30)
            for t in pending:
                t.cancel()
            sampler.halt.set()
            sampler.join(2)
        status = proc_status(proc.pid)
        if writer.error:
            raise writer.error
        final = {}
        for (job_id, seq) in writer.commits:
            final[job_id] = max(final.get(job_id, 0), seq)

        def latency(job_id: str, a: tuple[int, float, float]) -> float | None:
            t = writer.commits.get((job_id, a[0]))
            # ticks only: the replayed backlog (created, claimed) was written before the client connected
            return (a[1] - t) * 1000 if t is not None and a[0] < final[job_id] else None

        r = summarize(streams, final, latency)
        r.update(idle_rss=idle, connected_rss=connected_rss, peak_rss=max(sampler.peak, connected_rss),
                 hwm=status["VmHWM"], connect_s=connect_s, server_cpu=cpu.server_cores, foreign=cpu.foreign_cores,
                 writer_behind_ms=writer.behind_s * 1000, unfinished=len(pending))
        return r
    finally:
        if proc is not None:
            stop(proc)
        if db is not None:
            db.dispose()
        shutil.rmtree(tmp, ignore_errors=True)


async def baseline(clients: int, rate_per_client: float, count: int) -> dict:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start([PY, "-m", "uvicorn", "http_noop_app:app", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                  "--no-access-log", "--log-level", "warning"], cwd=BENCH, ready_url=f"{base}/noop", ready_method="POST")
    try:
        await asyncio.sleep(1.0)
        idle = proc_status(proc.pid)["VmRSS"]
        streams = [Stream("baseline") for _ in range(clients)]
        url = f"{base}/sse?rate={rate_per_client}&count={count}"
        async with client_pool(clients) as ac:
            # The counter starts per client at connect; RSS "connected" is read right after all have connected.
            tasks, connect_s = await open_all([(url, {}, s, count) for s in streams], ac, 120)
            connected_rss = proc_status(proc.pid)["VmRSS"]
            sampler = RssSampler(proc.pid)
            sampler.start()
            with CpuMeter(proc.pid) as cpu:
                done, pending = await asyncio.wait(tasks, timeout=count / rate_per_client + 30)
            for t in pending:
                t.cancel()
            sampler.halt.set()
            sampler.join(2)
        status = proc_status(proc.pid)
        r = summarize(streams, {"baseline": count}, lambda _k, a: (a[1] - a[2]) * 1000)
        r.update(idle_rss=idle, connected_rss=connected_rss, peak_rss=max(sampler.peak, connected_rss),
                 hwm=status["VmHWM"], connect_s=connect_s, server_cpu=cpu.server_cores, foreign=cpu.foreign_cores,
                 writer_behind_ms=0.0, unfinished=len(pending))
        return r
    finally:
        stop(proc)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=50)
    ap.add_argument("--clients-per-job", type=int, default=10)
    ap.add_argument("--rate", type=float, default=100.0, help="changes/s over all jobs")
    ap.add_argument("--per-job", type=int, default=40, help="tick changes per job")
    ap.add_argument("--no-baseline", action="store_true")
    a = ap.parse_args()
    raise_nofile(8192)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    clients = a.jobs * a.clients_per_job
    per_client_rate = a.rate / a.jobs
    print(f"# sse_fanout  {time.strftime('%Y-%m-%d %H:%M')}  {versions()}")
    print(f"{a.jobs} jobs x {a.clients_per_job} clients = {clients}; {a.rate:g} changes/s in total "
          f"({per_client_rate:g}/s per job, {a.rate * a.clients_per_job:,.0f} deliveries/s), {a.per_job} per job")
    rows: dict[str, list[dict]] = {"prospectpro serve --workers 0": [], "baseline: plain FastAPI counter SSE": []}
    for rep in range(1, a.reps + 1):
        busy = wait_for_quiet()
        r = asyncio.run(ours(a.jobs, a.clients_per_job, a.rate, a.per_job))
        rows["prospectpro serve --workers 0"].append(r)
        print(f"rep {rep} ours: {r}  (machine busy before: {busy:.2f})", flush=True)
        if not a.no_baseline:
            b = asyncio.run(baseline(clients, per_client_rate, a.per_job))
            rows["baseline: plain FastAPI counter SSE"].append(b)
            print(f"rep {rep} baseline: {b}", flush=True)
    print()
    print(f"median (min–max) over {a.reps} runs; RSS in MiB")
    hdr = ["server", "RSS idle (0 clients)", f"RSS {clients} connected", "RSS peak while streaming", "VmHWM",
           "connect all s", "delivery p50 ms", "p99 ms", "max ms", "deliveries", "lost", "duplicated",
           "clients with loss/dup/error", "server CPU (cores)", "other processes' CPU (cores)"]
    body = []
    for name, g in rows.items():
        if not g:
            continue
        body.append([name, med([r["idle_rss"] for r in g]), med([r["connected_rss"] for r in g]),
                     med([r["peak_rss"] for r in g]), med([r["hwm"] for r in g]), med([r["connect_s"] for r in g], 2),
                     med([r["p50"] for r in g]), med([r["p99"] for r in g]), med([r["max"] for r in g]),
                     med([r["deliveries"] for r in g], 0), sum(r["lost"] for r in g), sum(r["dup"] for r in g),
                     sum(r["bad_clients"] for r in g), med([r["server_cpu"] for r in g], 2),
                     med([r["foreign"] for r in g], 2)])
    print(table(hdr, body))
    per_conn = [(r["connected_rss"] - r["idle_rss"]) * 1024 / clients for r in rows["prospectpro serve --workers 0"]]
    print(f"\nserver memory per connected client (ours): {med(per_conn)} KiB")
    errs = {e for g in rows.values() for r in g for e in r["errors"]}
    if errs:
        print("client errors:", errs)


if __name__ == "__main__":
    main()
