"""POST /api/v1/campaigns under wrk (closed loop), against a plain FastAPI POST /noop.

Method (mirrors /work/shared/docs/peer-bench.md §4): per repetition a fresh data
dir (migrated + places imported before the server starts, not timed), a user
with an API key (every request is that one owner), then

  * `prospectpro serve --workers 0 --api-processes P --log-level warning` (API
    only: no in-process workers compete for the 2 CPUs; uvicorn defaults =
    uvloop + httptools, no access log; P = 1 and 2 by default), wrk 2 s warm-up
    at 8 clients, then
    `wrk -t1 -c{1,8,32} -d15s --latency -s http_post.lua` with the campaign body;
  * `uvicorn http_noop_app:app --no-access-log` (same uvicorn settings), same
    wrk runs against POST /noop with the same body and headers.

The submission and session rate limits are lifted (env) so every request is a
real submission. Afterwards the jobs in the DB are counted and compared with
the requests wrk completed (warm-up included; wrk does not count requests still
in flight when it stops, so the DB may hold up to <clients> more per run).

    .venv/bin/python bench/http_submit.py [--reps 3] [--dur 15] [--conns 1,8,32] [--processes 1,2] [--profile F]

Last, in-process: `write_submissions` cost per submission by group size (what the
group commit buys).

--profile FILE: one extra run (one process); py-spy (on PATH or /tmp/pyspy-venv/bin) records the
server at the highest client count (--gil: only the thread holding the GIL, so waiting
threads don't count), then bench/http_profile_summary.py prints where the time went.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from http_common import (
    BENCH,
    PROSPECTPRO,
    PY,
    CpuMeter,
    free_port,
    med,
    server_env,
    start,
    stop,
    table,
    versions,
    wait_for_quiet,
)

BODY = '{"business_type":"cafe","location":"Helsinki","max_results":5}'
UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def ms(tok: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)$", tok)
    assert m, tok
    return float(m.group(1)) * UNIT[m.group(2)]


class WrkError(RuntimeError):
    pass


def wrk(url: str, conns: int, dur: int, token: str = "", server_pids: list[int] | None = None,
        tries: int = 2) -> dict[str, float]:
    """One wrk run; an unparsable output (seen once on this shared VM) is shown and the run repeated once."""
    for attempt in range(tries):
        try:
            return _wrk(url, conns, dur, token, server_pids or [])
        except WrkError as exc:
            print(f"wrk attempt {attempt + 1} failed: {exc}", flush=True)
    raise WrkError(f"wrk failed {tries} times at c={conns}")


def _wrk(url: str, conns: int, dur: int, token: str, server_pids: list[int]) -> dict[str, float]:
    env = dict(os.environ, BENCH_BODY=BODY, BENCH_TOKEN=token)
    with CpuMeter(*server_pids) as cpu:
        proc = subprocess.run(
            ["wrk", "-t1", f"-c{conns}", f"-d{dur}s", "--latency", "--timeout", "5s", "-s", str(BENCH / "http_post.lua"),
             url],
            capture_output=True, text=True, timeout=dur + 30, env=env,
        )
    out, err = proc.stdout, proc.stderr
    lat = dict(re.findall(r"^\s*(50|99)(?:\.0+)?%\s+(\S+)\s*$", out, re.M))
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if not ("50" in lat and "99" in lat and rps and total):
        raise WrkError(f"could not parse wrk output (c={conns}):\n{out}\n{err}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return dict(
        rps=float(rps.group(1)), p50=ms(lat["50"]), p99=ms(lat["99"]), requests=int(total.group(1)),
        non2xx=int(non2xx.group(1)) if non2xx else 0, sock_err=sum(map(int, sock.groups())) if sock else 0,
        server_cpu=cpu.server_cores, foreign_cpu=cpu.foreign_cores,
    )


PG_ADMIN = ""  # --pg: a PostgreSQL admin URL; each server run gets a fresh database there


def fresh_database_url() -> str:
    """'' for the SQLite default, else a new empty PostgreSQL database (dropped by drop_database)."""
    if not PG_ADMIN:
        return ""
    import uuid

    from sqlalchemy import create_engine

    name = f"pp_bench_{uuid.uuid4().hex[:10]}"
    engine = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def drop_database(url: str) -> None:
    if not url:
        return
    from sqlalchemy import create_engine

    engine = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    engine.dispose()


def settings_for(data_dir: Path, database_url: str) -> Any:
    from prospectpro.config import Settings

    return Settings(data_dir=data_dir, **({"database_url": database_url} if database_url else {}))


def prepare(data_dir: Path, database_url: str = "") -> str:
    from prospectpro.bootstrap import open_database
    from prospectpro.services.users import create_user

    db = open_database(settings_for(data_dir, database_url))
    try:
        return create_user(db, "bench")[1]
    finally:
        db.dispose()


def count_jobs(data_dir: Path, database_url: str = "") -> int:
    from sqlalchemy import func, select

    from prospectpro.bootstrap import open_database
    from prospectpro.store.schema import discovery_jobs

    db = open_database(settings_for(data_dir, database_url), prepare=False)
    try:
        with db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(discovery_jobs)).scalar_one())
    finally:
        db.dispose()


def run_noop(conns: list[int], dur: int) -> list[dict]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/noop"
    proc = start([PY, "-m", "uvicorn", "http_noop_app:app", "--host", "127.0.0.1", "--port", str(port),
                  "--workers", "1", "--no-access-log", "--log-level", "warning"],
                 cwd=BENCH, ready_url=url, ready_method="POST")
    try:
        wrk(url, 8, 2)  # warm-up
        return [dict(endpoint="POST /noop (plain FastAPI)", conns=c, **wrk(url, c, dur, server_pids=[proc.pid])) for c in conns]
    finally:
        stop(proc)


def tree_pids(pid: int) -> list[int]:
    """pid and its descendants (uvicorn's worker processes)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def run_submit(conns: list[int], dur: int, processes: int = 1, profile: Path | None = None) -> tuple[list[dict], dict]:
    tmp = Path(tempfile.mkdtemp(prefix="pp-http-submit-"))
    database_url = fresh_database_url()
    try:
        data = tmp / "data"
        token = prepare(data, database_url)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start([PROSPECTPRO, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "0",
                      "--api-processes", str(processes), "--log-level", "warning"],
                     env=server_env(data, **({"PROSPECTPRO_DATABASE_URL": database_url} if database_url else {})),
                     ready_url=f"{base}/healthz")
        rows = []
        try:
            url = f"{base}/api/v1/campaigns"
            warm = wrk(url, 8, 2, token)
            sent = warm["requests"]
            pids = tree_pids(proc.pid)
            for c in conns:
                spy = None
                if profile is not None and c == max(conns):
                    pyspy = shutil.which("py-spy") or "/tmp/pyspy-venv/bin/py-spy"
                    if Path(pyspy).exists():
                        spy = subprocess.Popen([pyspy, "record", "-p", str(proc.pid), "-d", str(dur - 2), "-r", "100",
                                                "--gil", "--format", "raw", "-o", str(profile)],
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                r = wrk(url, c, dur, token, server_pids=pids)
                if spy is not None:
                    spy.wait(timeout=60)
                sent += r["requests"]
                label = ("POST /api/v1/campaigns" + (", PostgreSQL" if database_url else "")
                         + (f", {processes} processes" if processes > 1 else ", 1 process"))
                rows.append(dict(endpoint=label, conns=c, **r))
        finally:
            stop(proc)
        jobs = count_jobs(data, database_url)
        return rows, {"processes": processes, "wrk_requests": sent, "db_jobs": jobs, "max_in_flight": 8 + sum(conns)}
    finally:
        drop_database(database_url)
        shutil.rmtree(tmp, ignore_errors=True)


def group_cost(sizes: list[int], rounds: int = 60) -> list[list[object]]:
    """In-process: write_submissions, ms per submission (median of rounds) by group size."""
    import statistics

    from prospectpro.bootstrap import open_database
    from prospectpro.domain.campaign import parse_campaign_request
    from prospectpro.services.submissions import SubmitRequest, write_submissions
    from prospectpro.services.users import create_user

    req = parse_campaign_request({"business_type": "cafe", "location": "Helsinki", "max_results": 5})
    rows: list[list[object]] = []
    tmp = Path(tempfile.mkdtemp(prefix="pp-group-"))
    database_url = fresh_database_url()
    try:
        settings = settings_for(tmp / "data", database_url)
        db = open_database(settings)
        owner = create_user(db, "bench")[0].user_id
        one = SubmitRequest(req, owner_id=owner, per_minute=10**9)
        for size in sizes:
            times = []
            for _ in range(rounds):
                t = time.perf_counter()
                outcomes = write_submissions(db, settings, [one] * size)
                times.append((time.perf_counter() - t) * 1000)
                assert all(o.created for o in outcomes)  # type: ignore[union-attr]
            per = statistics.median(times) / size
            rows.append([size, f"{statistics.median(times):.2f}", f"{per:.3f}", f"{1000 / per:,.0f}"])
        db.dispose()
    finally:
        drop_database(database_url)
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dur", type=int, default=15)
    ap.add_argument("--conns", default="1,8,32")
    ap.add_argument("--processes", default="1,2", help="`serve --api-processes` values to measure")
    ap.add_argument("--pg", default="", metavar="ADMIN_URL",
                    help="run the server on PostgreSQL instead of SQLite: a fresh database per run is created through"
                         " this admin URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres) and dropped")
    ap.add_argument("--profile", type=Path, default=None, help="write a py-spy raw profile (max clients) here")
    ap.add_argument("--json", type=Path, default=None, help="also write raw rows as JSON lines")
    a = ap.parse_args()
    global PG_ADMIN
    PG_ADMIN = a.pg
    conns = [int(x) for x in a.conns.split(",")]
    print(f"# http_submit  {time.strftime('%Y-%m-%d %H:%M')}  {versions()}")
    rows: list[dict] = []
    checks: list[dict] = []
    jf = a.json.open("w") if a.json else None
    for rep in range(1, a.reps + 1):
        busy = wait_for_quiet()
        print(f"rep {rep}: machine busy before start {busy:.2f} cores", flush=True)
        for r in run_noop(conns, a.dur):
            rows.append(dict(rep=rep, **r))
        for processes in [int(x) for x in a.processes.split(",")]:
            sub, check = run_submit(conns, a.dur, processes)
            rows += [dict(rep=rep, **r) for r in sub]
            checks.append(dict(rep=rep, **check))
        if jf:
            for r in [r for r in rows if r["rep"] == rep] + [c for c in checks if c["rep"] == rep]:
                jf.write(json.dumps(r) + "\n")
            jf.flush()
        print(f"rep {rep}: " + "; ".join(f"{r['endpoint']} c={r['conns']} {r['rps']:.0f}/s p99 {r['p99']:.2f} ms"
                                         f" (foreign {r['foreign_cpu']:.2f})"
                                         for r in rows if r["rep"] == rep), flush=True)
    if jf:
        jf.close()
    out = []
    for ep in dict.fromkeys(r["endpoint"] for r in rows):
        for c in conns:
            g = [r for r in rows if r["endpoint"] == ep and r["conns"] == c]
            out.append([ep, c, med([r["rps"] for r in g], 0), med([r["p50"] for r in g], 2), med([r["p99"] for r in g], 2),
                        sum(r["non2xx"] for r in g), sum(r["sock_err"] for r in g), med([r["server_cpu"] for r in g], 2),
                        med([r["foreign_cpu"] for r in g], 2), len(g)])
    if out:
        print()
        print(table(["endpoint", "clients", "req/s", "p50 ms", "p99 ms", "non-2xx (sum)", "socket errors (sum)",
                     "server CPU (cores)", "other processes' CPU (cores)", "runs"], out))
        print()
        print(table(["rep", "processes", "requests wrk completed (incl. warm-up)", "jobs in DB",
                     "DB − wrk (≤ in-flight at stop)"],
                    [[c["rep"], c["processes"], c["wrk_requests"], c["db_jobs"],
                      f"{c['db_jobs'] - c['wrk_requests']} (≤ {c['max_in_flight']})"] for c in checks]))
    print("\nwrite_submissions in-process (one transaction per group), median of 60 groups")
    print(table(["group size", "ms per group", "ms per submission", "submissions/s (one core)"],
                group_cost([1, 4, 16, 32])))
    if a.profile:
        print(f"\nprofiling one more run at {max(conns)} clients -> {a.profile}")
        prof_rows, _ = run_submit([max(conns)], a.dur, profile=a.profile)
        r = prof_rows[0]
        print(f"(under py-spy: {r['rps']:.0f} req/s, p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms, server CPU {r['server_cpu']:.2f})")
        if a.profile.exists():
            subprocess.run([PY, str(BENCH / "http_profile_summary.py"), str(a.profile)], check=False)


if __name__ == "__main__":
    main()
