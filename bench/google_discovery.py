"""A 60-result Google discovery with simulated latency per page: wall time vs the sum of the page latencies.

    .venv/bin/python bench/google_discovery.py [--latency 0.3] [--runs 5] [--no-append]

Same run: the simulator (tests/sim/google.py) answers each Text Search page
after ``--latency`` seconds; ``GooglePlacesSource.discover`` asks for 60
places (three pages of 20, each a ledgered paid call through the real gate
on a fresh SQLite file). Pages follow each other (a page's token comes with
the previous page), so the floor is 3 × latency; what is above it is ours:
the gate (ledger lookup, reservation, settlement), the transport, parsing.
Each run is a new owner, so no recorded answer is reused. The baseline, in
the same run, is the same three requests made with bare httpx.
"""

from __future__ import annotations

import argparse
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
from prospectpro.domain.area import Area  # noqa: E402
from prospectpro.domain.campaign import Tier  # noqa: E402
from prospectpro.gate.core import Gate  # noqa: E402
from prospectpro.providers import google_places  # noqa: E402
from prospectpro.providers.google_places import SEARCH_FIELD_MASK, GooglePlacesSource  # noqa: E402
from prospectpro.providers.protocols import CallContext, DiscoveryQuery  # noqa: E402
from prospectpro.store import migrate  # noqa: E402
from prospectpro.store.db import Database  # noqa: E402
from tests.sim import google as google_sim  # noqa: E402
from tests.sim.server import Simulator  # noqa: E402

KEY = "bench-google-key"
AREA = Area(latitude=60.1699, longitude=24.9384, radius_m=3000.0, label="Helsinki", country="FI")


def bare_pages(client: httpx.Client) -> float:
    """The same three pages with bare httpx (one kept-alive client, as the gate's): seconds, start to last byte."""
    plan = google_places.search_plans("cafe", AREA)[0]
    headers = {"X-Goog-Api-Key": KEY, "X-Goog-FieldMask": SEARCH_FIELD_MASK}
    started = time.perf_counter()
    token = None
    for _ in range(3):
        body = client.post(google_places.SEARCH_PATH, json=plan.body(token), headers=headers).json()
        token = body.get("nextPageToken")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, Simulator() as sim:
        google_sim.install(sim, google_sim.grid(60), api_key=KEY)
        sim.set_latency(google_sim.SEARCH_PATH, args.latency)
        db = Database(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
        migrate.upgrade(db)
        settings = Settings(import_bundled_places=False, google_places_api_key=KEY, google_places_base_url=sim.url,
                            google_places_rate_per_second=1000.0)
        spec = google_places.spec(settings)
        assert spec is not None
        gate = Gate(db, settings, [spec])
        source = GooglePlacesSource(settings)
        query = DiscoveryQuery(tags=("amenity=cafe",), type_name="cafe", area=AREA, wanted=60)
        walls: list[float] = []
        bares: list[float] = []
        pages = found = 0
        bare = httpx.Client(base_url=sim.url)
        bare_pages(bare)  # warm-up: imports, connection set-up
        source.discover(query, CallContext(job_id=str(uuid.uuid4()), owner_id=str(uuid.uuid4()),
                                           tier=Tier.professional, wanted=60, budget_limit=Decimal("5"), gate=gate))
        for _ in range(args.runs):
            ctx = CallContext(job_id=str(uuid.uuid4()), owner_id=str(uuid.uuid4()), tier=Tier.professional,
                              wanted=60, budget_limit=Decimal("5"), gate=gate)
            sim.reset_calls()
            started = time.perf_counter()
            result = source.discover(query, ctx)
            walls.append(time.perf_counter() - started)
            pages, found = sim.count(google_sim.SEARCH_PATH), len(result)
            sim.reset_calls()
            bares.append(bare_pages(bare))
        bare.close()
        gate.close()
        db.dispose()

    floor = pages * args.latency
    wall, bare_wall = statistics.median(walls), statistics.median(bares)
    lines = [
        "",
        "## Google discovery (issue 9)",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `bench/google_discovery.py --latency {args.latency} "
        f"--runs {args.runs}`, {platform.python_implementation()} {platform.python_version()}, SQLite ledger. "
        f"A {found}-place discovery: {pages} Text Search pages, each answered after {args.latency * 1000:.0f} ms "
        "by the simulator; medians of the runs.",
        "",
        "| what | wall | sum of page latencies | above it | per page |",
        "|---|---|---|---|---|",
        f"| `GooglePlacesSource.discover` through the gate | {wall * 1000:.1f} ms | {floor * 1000:.0f} ms | "
        f"{(wall - floor) * 1000:.1f} ms | {(wall - floor) / pages * 1000:.1f} ms |",
        f"| baseline: the same {pages} requests, bare httpx | {bare_wall * 1000:.1f} ms | {floor * 1000:.0f} ms | "
        f"{(bare_wall - floor) * 1000:.1f} ms | {(bare_wall - floor) / pages * 1000:.1f} ms |",
        "",
        f"Runs (discover, ms): {', '.join(f'{w * 1000:.1f}' for w in walls)}. Pages are sequential (each needs the "
        "previous page's token), so the sum of the latencies is the floor. What both rows have above it is the "
        "simulator's and the loopback's share (a threaded http.server on a shared 2-core machine); the gate's "
        "own share (ledger lookup, reservation, settlement on SQLite) is the difference between the two rows.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_append:
        with open(ROOT / "bench" / "RESULTS.md", "a", encoding="utf-8") as results:
            results.write(text + "\n")


if __name__ == "__main__":
    main()
