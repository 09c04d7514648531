"""Gate overhead per paid call: Gate.call (ledger lookup + reservation + settlement) plus the gate's
transport (breaker, limits, streaming read, classify) vs a bare httpx call to the same simulator endpoint.

    .venv/bin/python bench/gate_overhead.py [-n 2000] [--warmup 200] [--no-append]

Same run, same simulator endpoint, calls interleaved (bare, gate, bare, gate…) so
drift hits both alike. Each gated call is a new paid request (a new key: no reuse,
no own answer), so every one does the full lookup → reserve → call → settle on
SQLite (a fresh file in a temp dir). The per-process rate limit is off. Printed
numbers are per call, in milliseconds; the difference is per interleaved pair.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the simulator lives in tests/sim

from prospectpro.config import Settings  # noqa: E402
from prospectpro.domain.campaign import Tier  # noqa: E402
from prospectpro.gate.core import Gate  # noqa: E402
from prospectpro.gate.types import GateRequest, ProviderSpec  # noqa: E402
from prospectpro.providers.protocols import CallContext  # noqa: E402
from prospectpro.store import migrate  # noqa: E402
from prospectpro.store.db import Database  # noqa: E402
from prospectpro.store.schema import LOCAL_USER_ID  # noqa: E402
from tests.sim.server import SimResponse, Simulator  # noqa: E402

KEY = "bench-key"
BODY = {"places": [{"id": f"p{i}", "displayName": {"text": f"Cafe {i}"}} for i in range(20)]}


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def line(label: str, samples: list[float]) -> str:
    return (
        f"| {label} | {statistics.median(samples):.3f} | {pct(samples, 0.99):.3f} | "
        f"{statistics.fmean(samples):.3f} | {max(samples):.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--job-calls", type=int, default=50, help="paid calls per job (then a new job)")
    parser.add_argument("--no-append", action="store_true", help="print only; do not append to bench/RESULTS.md")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="pp-gate-bench-"))
    db = Database(f"sqlite:///{tmp / 'bench.sqlite3'}")
    migrate.upgrade(db)
    with Simulator() as sim:
        sim.route("GET", "/v1/search", lambda request: SimResponse(200, BODY))
        spec = ProviderSpec(name="bench", base_url=sim.url, secrets=(KEY,), params={"key": KEY}, paid=True,
                            concurrency=4)
        gate = Gate(db, Settings(import_bundled_places=False), [spec])
        client = gate.http("bench")
        bare = httpx.Client(base_url=sim.url, params={"key": KEY}, headers={"User-Agent": "bench"})
        price = Decimal("0.035")
        contexts: dict[int, CallContext] = {}

        def context(n: int) -> CallContext:
            """A new job every JOB_CALLS calls: a campaign's reservation sums over its own rows."""
            block = n // args.job_calls
            if block not in contexts:
                contexts[block] = CallContext(job_id=str(uuid.uuid4()), owner_id=LOCAL_USER_ID,
                                              tier=Tier.professional, wanted=1,
                                              budget_limit=Decimal("1000000"), gate=gate)
            return contexts[block]

        def bare_call(n: int) -> object:
            return bare.get("/v1/search", params={"q": f"q{n}"}).json()

        def gated_call(n: int) -> object:
            return gate.call(
                context(n),
                GateRequest("bench", "search", key={"q": f"q{n}"}, max_cost=price),
                lambda: client.request("GET", "/v1/search", params={"q": f"q{n}"}).json(),
            ).body

        def ledger_only(n: int) -> object:
            return gate.call(context(n), GateRequest("bench", "noop", key={"q": f"q{n}"}, max_cost=price), lambda: BODY).body

        for i in range(args.warmup):
            bare_call(-i)
            gated_call(-i - 1)
            ledger_only(-i - 1)
        bare_ms: list[float] = []
        gate_ms: list[float] = []
        diff_ms: list[float] = []
        ledger_ms: list[float] = []
        started = datetime.now(UTC)
        for i in range(args.n):
            t0 = time.perf_counter_ns()
            bare_call(i)
            t1 = time.perf_counter_ns()
            gated_call(i)
            t2 = time.perf_counter_ns()
            ledger_only(i)
            t3 = time.perf_counter_ns()
            bare_ms.append((t1 - t0) / 1e6)
            gate_ms.append((t2 - t1) / 1e6)
            diff_ms.append((t2 - t1 - (t1 - t0)) / 1e6)
            ledger_ms.append((t3 - t2) / 1e6)
        ended = datetime.now(UTC)
        bare.close()
        gate.close()
        requests_seen = sim.count("/v1/search")
    db.dispose()

    rows = [
        "| | p50 ms | p99 ms | mean ms | max ms |",
        "|---|---:|---:|---:|---:|",
        line("bare httpx call (GET + .json())", bare_ms),
        line("the same call through Gate.call + Gate.http", gate_ms),
        line("**difference per pair (the gate's overhead)**", diff_ms),
        line("Gate.call alone (fn returns at once: ledger only)", ledger_ms),
    ]
    target = "met" if statistics.median(diff_ms) <= 2.0 else "NOT met"
    report = "\n".join(
        [
            "",
            "## Gate overhead (issue 9)",
            "",
            f"{started:%Y-%m-%d %H:%M}–{ended:%H:%M} UTC, `bench/gate_overhead.py -n {args.n} --warmup {args.warmup}`, "
            f"Python {platform.python_version()}, {os.cpu_count()} CPUs, SQLite ledger (WAL, fresh file), "
            f"simulator on 127.0.0.1 in the same process, keep-alive on both clients, rate limit off. "
            f"Interleaved: bare, gated, ledger-only; a new job every {args.job_calls} pairs "
            f"({2 * args.job_calls} ledger rows per job); {requests_seen} requests reached the simulator. "
            f"Load average at the end: {os.getloadavg()[0]:.1f}.",
            "",
            *rows,
            "",
            f"Target ≤ 2 ms at p50: {target} (p50 {statistics.median(diff_ms):.3f} ms, p99 {pct(diff_ms, 0.99):.3f} ms). "
            "Each gated call is a new paid request: one read (own row, reusable answer), one write transaction "
            "(owner lock, budget sums, insert `reserved`), the HTTP call, one write transaction (settle `ok`).",
            "",
        ]
    )
    print(report)
    if not args.no_append:
        with (ROOT / "bench" / "RESULTS.md").open("a") as out:
            out.write(report)


if __name__ == "__main__":
    main()
