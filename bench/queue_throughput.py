"""Queue throughput: no-op jobs through our real Worker and queue, against procrastinate and pgqueuer, same run.

    .venv/bin/python bench/queue_throughput.py [--n 2000] [--procs 1,2,4] [--sqlite-procs 1,2] [--reps 1]
        [--peers procrastinate,pgqueuer] [--benchenv /work/benchenv] [--profile OUT.txt] [--out results.jsonl]

The peers live in their own venv (``sh bench/queue_env.sh`` makes it; never in the product's
dependencies) and are run by ``bench/queue_peers.py``. Method, the same for every queue:
reset the tables, enqueue N no-op jobs in one call, ANALYZE, start P worker processes that
import and connect and wait on a stdin barrier, release them together. Rate = jobs /
(last completion - first start), both from the rows each queue writes (ours:
``discovery_jobs.started_at`` / ``completed_at``). Ours: ``bench/queue_worker.py``, a real
``Worker`` of one slot with a registered no-op kind (the handler only completes the job).
On PostgreSQL ours and the peers share the server (stock settings) in the same run; on SQLite
ours runs alone (the peers are PostgreSQL-only). Every run checks that all N completed.

``--profile OUT``: one more PostgreSQL run, 1 process, with py-spy (from the bench venv)
recording the worker at 500 Hz with its threads; the collapsed stacks go to OUT and a
summary by the accounting buckets is printed (``bench/queue_profile.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select, text

from prospectpro.jobs import queue
from prospectpro.store import migrate
from prospectpro.store.db import Database
from prospectpro.store.schema import SYSTEM_USER_ID, discovery_jobs

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
ADMIN = os.environ.get("PROSPECTPRO_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
OURS_DB = "pp_bench_queue"


def sa_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def pg_url(name: str) -> str:
    return ADMIN.rsplit("/", 1)[0] + "/" + name


def ensure_pg() -> Database:
    admin = Database(sa_url(ADMIN))
    with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": OURS_DB}).first() is None:
            conn.exec_driver_sql(f'CREATE DATABASE "{OURS_DB}"')
    admin.dispose()
    db = Database(sa_url(pg_url(OURS_DB)))
    migrate.upgrade(db)
    return db


def reset_pg(db: Database) -> None:
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("TRUNCATE discovery_jobs, job_events RESTART IDENTITY CASCADE")
        conn.exec_driver_sql("VACUUM ANALYZE discovery_jobs")
        conn.exec_driver_sql("VACUUM ANALYZE job_events")
        conn.exec_driver_sql("CHECKPOINT")


def enqueue(db: Database, n: int) -> float:
    jobs = [queue.NewJob(kind="noop", owner_id=SYSTEM_USER_ID, config={}, max_attempts=3) for _ in range(n)]
    started = time.perf_counter()
    with db.write() as conn:
        queue.insert_jobs(conn, jobs)
    elapsed = time.perf_counter() - started
    if not db.is_sqlite:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE discovery_jobs")
            conn.exec_driver_sql("ANALYZE job_events")
    return elapsed


def unfinished(db: Database) -> int:
    with db.read() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(discovery_jobs)
                .where(discovery_jobs.c.status.in_(["pending", "processing"]))
            ).scalar_one()
        )


def run_ours(
    db: Database,
    url: str,
    procs: int,
    n: int,
    timeout: float = 170.0,
    profile: str | None = None,
    src: str | None = None,
) -> dict:
    """Start ``procs`` worker processes behind the barrier, release them, wait for every job to end, stop them.

    ``src``: run the workers on another copy of the code (``--baseline``), put first on their path.
    """
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    ps = [
        subprocess.Popen(
            [PYTHON, str(HERE / "queue_worker.py"), url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(procs)
    ]
    spy = None
    try:
        for p in ps:
            line = p.stdout.readline()  # type: ignore[union-attr]
            assert line.strip() == "READY", f"worker said {line!r}"
        if profile:
            spy = subprocess.Popen(
                [
                    profile_tool(),
                    "record",
                    "--pid",
                    str(ps[0].pid),
                    "--rate",
                    "500",
                    "--threads",
                    "--idle",
                    "--nonblocking",
                    "--format",
                    "raw",
                    "-o",
                    profile,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)  # py-spy attaches
        for p in ps:
            p.stdin.write("go\n")  # type: ignore[union-attr]
            p.stdin.flush()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        while unfinished(db):
            assert time.monotonic() < deadline, "the jobs did not finish in time"
            assert all(p.poll() is None for p in ps), "a worker died"
            time.sleep(0.1)
        cpu_s = sum(process_cpu(p.pid) for p in ps)  # before they stop: the drain only
        for p in ps:
            p.stdin.write("stop\n")  # type: ignore[union-attr]
            p.stdin.flush()  # type: ignore[union-attr]
        for p in ps:
            p.communicate(timeout=60)
            assert p.returncode == 0, f"worker rc={p.returncode}"
    finally:
        for p in ps:
            if p.poll() is None:
                p.kill()
                p.wait()
        if spy is not None:
            spy.send_signal(2)
            spy.wait(30)
    with db.read() as conn:
        row = conn.execute(
            select(
                func.min(discovery_jobs.c.started_at),
                func.max(discovery_jobs.c.completed_at),
                func.count().filter(discovery_jobs.c.status == "completed"),
                func.max(discovery_jobs.c.attempts),
            )
        ).one()
    first, last, ok, max_attempts = row
    window = (last - first).total_seconds()
    return {
        "succeeded": int(ok),
        "left": n - int(ok),
        "window_s": round(window, 3),
        "rate": round(ok / window),
        "worker_cpu_ms_per_job": round(1000 * cpu_s / max(1, int(ok)), 3),
        "max_attempts": int(max_attempts),
    }


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def profile_tool() -> str:
    return str(Path(BENCHENV) / "bin" / "py-spy")


def peers(lib: str, procs: int, n: int, batch: int = 10) -> dict:
    out = subprocess.run(
        [
            str(Path(BENCHENV) / "bin" / "python"),
            str(HERE / "queue_peers.py"),
            "--lib",
            lib,
            "--procs",
            str(procs),
            "--batch",
            str(batch),
            "--n",
            str(n),
            "--admin-url",
            ADMIN,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    rec: dict = json.loads(out.strip().splitlines()[-1])
    return rec


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f}/{five:.2f}"


def emit(rec: dict, out: str | None) -> None:
    line = json.dumps(rec)
    print(line, flush=True)
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")


def med(rows: list[dict], **match: object) -> str:
    vals = sorted(r["rate"] for r in rows if all(r.get(k) == v for k, v in match.items()))
    if not vals:
        return "-"
    m = statistics.median(vals)
    return f"{m:,.0f}" if len(vals) == 1 else f"{m:,.0f} ({vals[0]:,}–{vals[-1]:,})"


def medv(rows: list[dict], **match: object) -> float | None:
    vals = [r["rate"] for r in rows if all(r.get(k) == v for k, v in match.items())]
    return statistics.median(vals) if vals else None


def table(rows: list[dict], procs: list[int], sqlite_procs: list[int]) -> str:
    lines = [
        "| worker processes | ours PG (jobs/s) | before (baseline ref) | procrastinate c=1 | ours ÷ procrastinate "
        "| pgqueuer batch 1 | pgqueuer batch 10 | ours ÷ pgqueuer-10 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in procs:
        ours, pc, pq10 = (
            medv(rows, q="ours-pg", procs=p),
            medv(rows, q="procrastinate", procs=p),
            medv(rows, q="pgqueuer", procs=p, batch=10),
        )
        ratio = f"{ours / pc:.2f}" if ours and pc else "-"
        ratio10 = f"{ours / pq10:.2f}" if ours and pq10 else "-"
        lines.append(
            f"| {p} | {med(rows, q='ours-pg', procs=p)} | {med(rows, q='base-pg', procs=p)} "
            f"| {med(rows, q='procrastinate', procs=p)} | {ratio} "
            f"| {med(rows, q='pgqueuer', procs=p, batch=1)} | {med(rows, q='pgqueuer', procs=p, batch=10)} | {ratio10} |"
        )
    lines += ["", "| worker processes | ours SQLite (jobs/s) | before (baseline ref) |", "|---|---|---|"]
    lines += [
        f"| {p} | {med(rows, q='ours-sqlite', procs=p)} | {med(rows, q='base-sqlite', procs=p)} |" for p in sqlite_procs
    ]
    return "\n".join(lines)


BENCHENV = os.environ.get("BENCHENV", "/work/benchenv")


def main() -> None:
    global BENCHENV
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--procs", default="1,2,4")
    ap.add_argument("--sqlite-procs", default="1,2")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--peers", default="procrastinate,pgqueuer")
    ap.add_argument("--benchenv", default=BENCHENV)
    ap.add_argument("--profile", help="collapsed py-spy stacks of one PostgreSQL worker go here")
    ap.add_argument("--out", help="append each run's JSON line here")
    ap.add_argument(
        "--baseline",
        metavar="GIT_REF",
        help="also run our workers on the code of GIT_REF (git archive into a temp dir), in the same run",
    )
    a = ap.parse_args()
    BENCHENV = a.benchenv
    procs = [int(x) for x in a.procs.split(",") if x]
    sqlite_procs = [int(x) for x in a.sqlite_procs.split(",") if x]
    peer_libs = [x for x in a.peers.split(",") if x]
    rows: list[dict] = []
    loads = [load()]
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}  n={a.n}  load(1m/5m) {loads[0]}", flush=True)
    pg = ensure_pg() if procs or a.profile else None
    base_dir = tempfile.TemporaryDirectory(prefix="pp-bench-base-") if a.baseline else None
    variants: list[tuple[str, str | None]] = [("ours", None)]
    if base_dir is not None:
        archive = subprocess.run(
            ["git", "-C", str(HERE.parent), "archive", a.baseline, "src"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", base_dir.name], input=archive, check=True)
        variants.append(("base", str(Path(base_dir.name) / "src")))
    for rep in range(1, a.reps + 1):
        for p in procs:
            assert pg is not None
            for name, src in variants:
                reset_pg(pg)
                enq = enqueue(pg, a.n)
                rec = {
                    "q": f"{name}-pg",
                    "procs": p,
                    "rep": rep,
                    "n": a.n,
                    "enqueue_s": round(enq, 3),
                    "load": load(),
                    **run_ours(pg, sa_url(pg_url(OURS_DB)), p, a.n, src=src),
                }
                rows.append(rec)
                emit(rec, a.out)
            if "procrastinate" in peer_libs:
                rec = {"q": "procrastinate", "rep": rep, "load": load(), **peers("procrastinate", p, a.n)}
                rows.append(rec)
                emit(rec, a.out)
            if "pgqueuer" in peer_libs:
                for batch in (1, 10):
                    rec = {"q": "pgqueuer", "rep": rep, "load": load(), **peers("pgqueuer", p, a.n, batch)}
                    rows.append(rec)
                    emit(rec, a.out)
        for p in sqlite_procs:
            for name, src in variants:
                with tempfile.TemporaryDirectory(prefix="pp-bench-queue-") as tmp:
                    url = f"sqlite:///{tmp}/queue.sqlite3"
                    db = Database(url)
                    migrate.upgrade(db)
                    enq = enqueue(db, a.n)
                    rec = {
                        "q": f"{name}-sqlite",
                        "procs": p,
                        "rep": rep,
                        "n": a.n,
                        "enqueue_s": round(enq, 3),
                        "load": load(),
                        **run_ours(db, url, p, a.n, src=src),
                    }
                    db.dispose()
                rows.append(rec)
                emit(rec, a.out)
    loads.append(load())
    for rec in rows:
        assert rec["left"] == 0, rec
    print()
    print(table(rows, procs, sqlite_procs))
    print(f"\nload average (1m/5m) at start {loads[0]}, at end {loads[-1]}")
    if a.profile:
        assert pg is not None
        reset_pg(pg)
        enqueue(pg, a.n)
        rec = run_ours(pg, sa_url(pg_url(OURS_DB)), 1, a.n, profile=a.profile)
        print(f"\nprofiled run (py-spy attached, 1 process): {rec['rate']} jobs/s")
        subprocess.run([PYTHON, str(HERE / "queue_profile.py"), a.profile], check=False)
    if pg is not None:
        pg.dispose()
    if base_dir is not None:
        base_dir.cleanup()


if __name__ == "__main__":
    main()
