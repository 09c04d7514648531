"""PostgreSQL push (issue 13): enqueue-to-start latency of an idle worker in another process, LISTEN/NOTIFY
against polling (same run), and event delivery from a writer process to an SSE client of another API process.

    .venv/bin/python bench/pg_latency.py [--samples 100] [--admin-url postgresql+psycopg://postgres@127.0.0.1/postgres]

A fresh database is made and dropped. Each worker runs in its own process with one slot; the parent enqueues
one job at a time, at a random 50–250 ms gap (so the worker is idle, asleep), and the worker's handler stamps
``time.time()`` into the job's metrics: latency = that stamp − the enqueue's commit. Polling is the worker
as it is on SQLite (``listen=False``, poll_interval 0.2 s, the default). Events: the parent appends an event
to a running job (a write as a worker does it) and an SSE client on a ``prospectpro serve --workers 0``
process (its own hub, its own LISTEN connection) stamps its arrival.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import httpx  # noqa: E402

from prospectpro.domain.status import JobStatus  # noqa: E402
from prospectpro.jobs import queue  # noqa: E402
from prospectpro.jobs.kinds import JobKind  # noqa: E402
from prospectpro.jobs.model import Change  # noqa: E402
from prospectpro.jobs.run import JobRun  # noqa: E402
from prospectpro.jobs.worker import Worker, WorkerConfig  # noqa: E402
from prospectpro.services.users import create_user  # noqa: E402
from prospectpro.store import migrate  # noqa: E402
from prospectpro.store.db import Database  # noqa: E402

KIND = "bench_start"


def stamp(run: JobRun) -> None:
    started = time.time()
    run.change(Change(kind="completed", status=JobStatus.completed, progress=100, metrics={"started": started}))


def child_worker(url: str, mode: str) -> None:
    config = WorkerConfig(poll_interval=0.2, listen=mode == "listen", lease_seconds=30)
    worker = Worker(Database(url), [JobKind(KIND, stamp)], config).start()
    print("ready", flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    worker.stop(timeout=10)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def summary(ms: list[float]) -> str:
    return f"p50 {pct(ms, 50):.1f} ms, p95 {pct(ms, 95):.1f} ms, p99 {pct(ms, 99):.1f} ms, max {max(ms):.1f} ms"


def start_latency(db: Database, url: str, mode: str, samples: int, owner_id: str) -> list[float]:
    child = subprocess.Popen(
        [sys.executable, __file__, "--child-worker", url, mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    time.sleep(1.0)  # its listener connects
    out = []
    try:
        for _ in range(samples):
            time.sleep(random.uniform(0.05, 0.25))
            with db.write() as conn:
                job = queue.insert_job(conn, queue.NewJob(kind=KIND, owner_id=owner_id, config={}, max_attempts=1))
            committed = time.time()
            while (done := queue.get_job(db, job.id)).status != JobStatus.completed:
                time.sleep(0.002)
            out.append((done.metrics["started"] - committed) * 1000)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(30)
    return out


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def event_latency(db: Database, url: str, samples: int, owner_id: str, key: str, tmp: Path) -> list[float]:
    port = free_port()
    env = {
        **os.environ,
        "PROSPECTPRO_DATABASE_URL": url,
        "PROSPECTPRO_DATA_DIR": str(tmp),
        "PROSPECTPRO_IMPORT_BUNDLED_PLACES": "false",
        "PYTHONPATH": str(ROOT / "src"),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "prospectpro", "serve", "--workers", "0", "--port", str(port), "--log-level", "warning"],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        with db.write() as conn:
            job = queue.insert_job(
                conn, queue.NewJob(kind="bench_events", owner_id=owner_id, config={}, max_attempts=1)
            )
        arrived: dict[int, float] = {}
        opened = threading.Event()

        def client() -> None:
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.stream("GET", f"{base}/api/v1/jobs/{job.id}/events", headers=headers, timeout=60) as response:
                opened.set()
                for line in response.iter_lines():
                    if line.startswith("id: "):
                        arrived[int(line[4:])] = time.time()
                        if len(arrived) > samples:
                            return

        reader = threading.Thread(target=client, daemon=True)
        reader.start()
        opened.wait(10)
        time.sleep(0.5)
        committed: dict[int, float] = {}
        for _ in range(samples):
            time.sleep(random.uniform(0.02, 0.1))
            with db.write() as conn:
                locked = queue.lock_job(conn, job.id)
                _, event = queue.apply_change(conn, locked, Change(kind="tick"))
            committed[event.seq] = time.time()
        reader.join(30)
        return [(arrived[seq] - at) * 1000 for seq, at in committed.items() if seq in arrived]
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--child-worker", nargs=2, metavar=("URL", "MODE"))
    args = parser.parse_args()
    if args.child_worker:
        child_worker(*args.child_worker)
        return
    admin = Database(args.admin_url)
    name = f"pp_bench_{uuid.uuid4().hex[:10]}"
    with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = args.admin_url.rsplit("/", 1)[0] + f"/{name}"
    db = Database(url)
    try:
        migrate.upgrade(db)
        principal, key = create_user(db, "bench")
        results = {}
        for mode in ("listen", "poll", "listen", "poll"):  # A-B-A-B: the same window for both
            results.setdefault(mode, []).extend(start_latency(db, url, mode, args.samples // 2, principal.user_id))
        for mode, ms in results.items():
            print(f"enqueue → start, idle worker in another process, {mode:>6}: {summary(ms)} (n={len(ms)})")
        tmp = Path(f"/tmp/{name}")
        ms = event_latency(db, url, args.samples, principal.user_id, key, tmp)
        print(f"event write → SSE client on another API process: {summary(ms)} (n={len(ms)})")
    finally:
        db.dispose()
        with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


if __name__ == "__main__":
    main()
