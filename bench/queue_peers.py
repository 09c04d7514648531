"""Peer queues for bench/queue_throughput.py: procrastinate and pgqueuer, no-op jobs, same method as ours.

Runs in the benchmark's own venv (bench/queue_env.sh), never the product's:

    $BENCHENV/bin/python bench/queue_peers.py --lib procrastinate --procs 4 --n 2000
    $BENCHENV/bin/python bench/queue_peers.py --lib pgqueuer --batch 10 --procs 4 --n 2000

Each run: reset the peer's tables, enqueue N no-op jobs in one call, ANALYZE, start P worker
processes that import and connect and wait on a stdin barrier, release them together; each
drains the queue and exits. The rate is N / (last job done - first job start), both read from
the rows the peer itself writes (procrastinate_events started/succeeded, pgqueuer_log
picked/successful). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import psycopg

HERE = Path(__file__).resolve().parent
ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DBS = {"procrastinate": "pp_bench_procr", "pgqueuer": "pp_bench_pgq"}


def dsn(admin: str, name: str) -> str:
    return admin.rsplit("/", 1)[0] + "/" + name


def ensure_database(admin: str, name: str) -> bool:
    """Create the database when missing; True when it was created (the schema must be installed)."""
    with psycopg.connect(admin, autocommit=True) as c:
        if c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        c.execute(f'CREATE DATABASE "{name}"')
        return True


# -- procrastinate -------------------------------------------------------------------
def procrastinate_app(url: str):  # type: ignore[no-untyped-def]
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))

    @app.task(name="noop")
    async def noop() -> None:
        return None

    return app, noop


async def pc_worker(url: str) -> None:
    app, _ = procrastinate_app(url)
    async with app.open_async():
        await barrier()
        await app.run_worker_async(wait=False, concurrency=1)


def pc_bench(url: str, n: int, procs: int) -> dict[str, object]:
    app, noop = procrastinate_app(url)

    async def setup() -> float:
        async with app.open_async():
            with psycopg.connect(url, autocommit=True) as c:
                installed = c.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()[0]  # type: ignore[index]
            if installed is None:
                await app.schema_manager.apply_schema_async()
            with psycopg.connect(url, autocommit=True) as c:
                c.execute(
                    "TRUNCATE procrastinate_events, procrastinate_periodic_defers, procrastinate_jobs,"
                    " procrastinate_workers RESTART IDENTITY CASCADE"
                )
                c.execute("VACUUM ANALYZE procrastinate_jobs")
                c.execute("CHECKPOINT")
            started = time.perf_counter()
            await noop.batch_defer_async(*[{}] * n)
            return time.perf_counter() - started

    enqueue_s = asyncio.run(setup())
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("ANALYZE procrastinate_jobs, procrastinate_events")
    run_workers(["--worker", "procrastinate", "--url", url], procs)
    with psycopg.connect(url) as c:
        first, last, ok = c.execute(
            "SELECT extract(epoch FROM min(at) FILTER (WHERE type = 'started')),"
            " extract(epoch FROM max(at) FILTER (WHERE type = 'succeeded')),"
            " count(*) FILTER (WHERE type = 'succeeded') FROM procrastinate_events"
        ).fetchone()  # type: ignore[misc]
        left = c.execute("SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')").fetchone()[0]  # type: ignore[index]
    return result("procrastinate", procs, 1, n, ok, left, enqueue_s, float(first), float(last))


# -- pgqueuer ------------------------------------------------------------------------
async def pgq_worker(url: str, batch: int) -> None:
    import asyncpg
    from pgqueuer import AsyncpgDriver, PgQueuer
    from pgqueuer.domain.types import QueueExecutionMode

    conn = await asyncpg.connect(url)
    pgq = PgQueuer(AsyncpgDriver(conn))

    @pgq.entrypoint("noop")
    async def noop(job: object) -> None:
        return None

    await barrier()
    await pgq.run(batch_size=batch, mode=QueueExecutionMode.drain, dequeue_timeout=timedelta(seconds=1))
    await conn.close()


def pgq_bench(url: str, n: int, procs: int, batch: int) -> dict[str, object]:
    import asyncpg
    from pgqueuer import AsyncpgDriver, Queries

    async def setup() -> float:
        conn = await asyncpg.connect(url)
        try:
            queries = Queries(AsyncpgDriver(conn))
            if not await queries.has_table("pgqueuer"):
                await queries.install()
            await conn.execute("TRUNCATE pgqueuer, pgqueuer_log, pgqueuer_statistics RESTART IDENTITY")
            await conn.execute("VACUUM ANALYZE pgqueuer")
            await conn.execute("CHECKPOINT")
            started = time.perf_counter()
            await queries.enqueue(["noop"] * n, [None] * n, [0] * n)
            elapsed = time.perf_counter() - started
            await conn.execute("ANALYZE pgqueuer, pgqueuer_log")
            return elapsed
        finally:
            await conn.close()

    enqueue_s = asyncio.run(setup())
    run_workers(["--worker", "pgqueuer", "--url", url, "--batch", str(batch)], procs)
    with psycopg.connect(url) as c:
        first, last, ok = c.execute(
            "SELECT extract(epoch FROM min(created) FILTER (WHERE status = 'picked')),"
            " extract(epoch FROM max(created) FILTER (WHERE status = 'successful')),"
            " count(*) FILTER (WHERE status = 'successful') FROM pgqueuer_log"
        ).fetchone()  # type: ignore[misc]
        left = c.execute("SELECT count(*) FROM pgqueuer").fetchone()[0]  # type: ignore[index]
    return result("pgqueuer", procs, batch, n, ok, left, enqueue_s, float(first), float(last))


# -- common --------------------------------------------------------------------------
async def barrier() -> None:
    print("READY", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


def run_workers(args: list[str], procs: int, timeout: float = 170.0) -> None:
    ps = [
        subprocess.Popen([sys.executable, __file__, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(procs)
    ]
    try:
        for p in ps:
            line = p.stdout.readline()  # type: ignore[union-attr]
            assert line.strip() == "READY", f"worker said {line!r}"
        for p in ps:
            p.stdin.write("go\n")  # type: ignore[union-attr]
            p.stdin.flush()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        for p in ps:
            p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            assert p.returncode == 0, f"worker rc={p.returncode}"
    finally:
        for p in ps:
            if p.poll() is None:
                p.kill()
                p.wait()


def result(
    lib: str, procs: int, batch: int, n: int, ok: int, left: int, enqueue_s: float, first: float, last: float
) -> dict[str, object]:
    return {
        "lib": lib,
        "procs": procs,
        "batch": batch,
        "n": n,
        "succeeded": ok,
        "left": left,
        "enqueue_s": round(enqueue_s, 3),
        "window_s": round(last - first, 3),
        "rate": round(ok / (last - first)),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", choices=sorted(DBS))
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=10, help="pgqueuer batch_size")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--admin-url", default=ADMIN)
    ap.add_argument("--worker", choices=sorted(DBS), help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker == "procrastinate":
        asyncio.run(pc_worker(a.url))
        return
    if a.worker == "pgqueuer":
        asyncio.run(pgq_worker(a.url, a.batch))
        return
    if a.lib is None:
        ap.error("--lib is required")
    name = DBS[a.lib]
    ensure_database(a.admin_url, name)
    url = dsn(a.admin_url, name)
    rec = pc_bench(url, a.n, a.procs) if a.lib == "procrastinate" else pgq_bench(url, a.n, a.procs, a.batch)
    print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
