"""Enqueue latency: one campaign through the real service vs a bare SQLite insert.

    .venv/bin/python bench/enqueue.py [-n 1000] [--warmup 50] [--profile]

Everything is written to a fresh temp dir (removed at the end). Printed numbers
are per call, in milliseconds.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, event, insert

from prospectpro.bootstrap import open_database
from prospectpro.config import Settings
from prospectpro.domain.campaign import parse_campaign_request
from prospectpro.services import campaigns as campaign_service
from prospectpro.services.submissions import submit_campaign
from prospectpro.store.schema import LOCAL_USER_ID

REQUEST = {"business_type": "cafe", "location": "Helsinki", "max_results": 20}


def summary(samples_ms: list[float]) -> dict[str, float]:
    s = sorted(samples_ms)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))]
    return {"median": statistics.median(s), "p90": pick(0.90), "p99": pick(0.99), "max": s[-1], "mean": statistics.fmean(s)}


def show(label: str, samples_ms: list[float]) -> None:
    r = summary(samples_ms)
    print(
        f"{label:<44} n={len(samples_ms):<5} median {r['median']:7.3f}  p90 {r['p90']:7.3f}  "
        f"p99 {r['p99']:7.3f}  max {r['max']:7.3f}  mean {r['mean']:7.3f}"
    )


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


# -- ours ----------------------------------------------------------------------
def enqueue_once(db, settings) -> None:
    request = parse_campaign_request(REQUEST)  # the validation the edges do before submit
    submit_campaign(db, settings, LOCAL_USER_ID, request)


def split_pass(db, settings, n: int) -> dict[str, list[float]]:
    """Same call, with resolve_location and db.write() wrapped by timers (this process only)."""
    parts: dict[str, list[float]] = {"total": [], "validate": [], "resolve_location": [], "write_txn": []}
    original_resolve = campaign_service.resolve_location
    original_write = db.write

    def resolve(*a, **kw):
        t0 = time.perf_counter_ns()
        try:
            return original_resolve(*a, **kw)
        finally:
            parts["resolve_location"].append((time.perf_counter_ns() - t0) / 1e6)

    @contextmanager
    def write():
        t0 = time.perf_counter_ns()
        with original_write() as conn:  # BEGIN IMMEDIATE … 3 inserts … COMMIT
            yield conn
        parts["write_txn"].append((time.perf_counter_ns() - t0) / 1e6)

    campaign_service.resolve_location, db.write = resolve, write
    try:
        for _ in range(n):
            t0 = time.perf_counter_ns()
            request = parse_campaign_request(REQUEST)
            t1 = time.perf_counter_ns()
            submit_campaign(db, settings, LOCAL_USER_ID, request)
            t2 = time.perf_counter_ns()
            parts["validate"].append((t1 - t0) / 1e6)
            parts["total"].append((t2 - t0) / 1e6)
    finally:
        campaign_service.resolve_location = original_resolve
        del db.write  # back to the bound method
    parts["other (type, hash, config, uuid)"] = [
        t - v - r - w
        for t, v, r, w in zip(parts["total"], parts["validate"], parts["resolve_location"], parts["write_txn"])
    ]
    return parts


# -- baseline --------------------------------------------------------------------
def bare_engine(path: Path):
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    meta = MetaData()
    table = Table("t", meta, Column("id", Integer, primary_key=True), Column("payload", String))
    meta.create_all(engine)
    return engine, table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=1000, help="timed calls per variant")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--profile", action="store_true", help="cProfile 200 submissions and print the top entries")
    ap.add_argument(
        "--autocheckpoint",
        type=int,
        default=None,
        help="diagnosis only: PRAGMA wal_autocheckpoint=N on our connections (0 = never; default: 20,000 pages, with checkpoints in a background thread)",
    )
    args = ap.parse_args()
    n, warm = max(1, min(args.n, 100_000)), max(0, min(args.warmup, 10_000))

    tmp = Path(tempfile.mkdtemp(prefix="pp-bench-enqueue-"))
    try:
        # Baseline: bare SQLAlchemy insert, own transaction, same pragmas.
        engine, table = bare_engine(tmp / "bare.sqlite3")

        def bare_insert() -> None:
            with engine.begin() as conn:
                conn.execute(insert(table).values(payload="x" * 100))

        timed(bare_insert, warm)
        bare = timed(bare_insert, n)
        engine.dispose()

        t0 = time.perf_counter()
        settings = Settings(data_dir=tmp / "data", database_url="")
        db = open_database(settings)  # migrations + bundled places import
        setup_s = time.perf_counter() - t0
        if args.autocheckpoint is not None:
            db.engine.dispose()  # new connections get the pragma

            @event.listens_for(db.engine, "connect")
            def _checkpoint(dbapi_conn, _record):
                dbapi_conn.execute(f"PRAGMA wal_autocheckpoint={int(args.autocheckpoint)}")

        # Our write path with one bare insert: BEGIN IMMEDIATE + in-process write lock.
        engine2, table2 = bare_engine(tmp / "handle.sqlite3")
        engine2.dispose()
        from prospectpro.store.db import Database

        handle = Database(f"sqlite:///{tmp / 'handle.sqlite3'}")

        def handle_insert() -> None:
            with handle.write() as conn:
                conn.execute(insert(table2).values(payload="x" * 100))

        timed(handle_insert, warm)
        handle_bare = timed(handle_insert, n)
        handle.dispose()

        timed(lambda: enqueue_once(db, settings), warm)
        ours = timed(lambda: enqueue_once(db, settings), n)
        parts = split_pass(db, settings, n)

        print(f"SQLite {__import__('sqlite3').sqlite_version}; temp dir {tmp}; setup (migrate+import) {setup_s:.2f} s")
        print(f"warm-up {warm}, then {n} timed calls each; ms per call")
        show("baseline: bare INSERT, own txn (SQLAlchemy)", bare)
        show("baseline: 1 INSERT via Database.write()", handle_bare)
        show("submit_campaign (validate+resolve+3 inserts)", ours)
        print("split pass (timers around resolve_location and db.write):")
        for name, samples in parts.items():
            show(f"  {name}", samples)
        med = summary(ours)["median"]
        print(f"overhead vs bare insert: median x{med / summary(bare)['median']:.1f}")
        writes = parts["write_txn"]
        slow = [i for i, w in enumerate(writes) if w > 3 * summary(writes)["median"]]
        gaps = [b - a for a, b in zip(slow, slow[1:])]
        print(
            f"slow write txns (> 3x median): {len(slow)} of {len(writes)}"
            + (f", one every {statistics.median(gaps):.0f} calls (median gap)" if gaps else "")
            + "  <- periodic = WAL auto-checkpoint (fsync), see --autocheckpoint 0"
        )

        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(200):
                enqueue_once(db, settings)
            prof.disable()
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(25)
            print(buf.getvalue())
        db.dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
