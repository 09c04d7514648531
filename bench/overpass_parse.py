"""Overpass ingest: a 20,000-element answer parsed and stored into the places index (issue 10).

Measured in one run, alternating, against ``json.loads`` of the same body alone:

* parse alone: ``json.loads(body)``
* ingest: ``overpass.parse(body)`` (json.loads + the named, located elements)
  + ``store_live_places`` (places + place_categories, batched upserts) + ``record_coverage``,
  into a fresh, migrated SQLite store each round (the real on-disk store, WAL).

Time is wall clock (median of the rounds); peak memory is ``tracemalloc``'s peak of Python allocations
during the step (the body itself excluded: it exists before either step). Targets: ingest ≤ 5× the
parse alone, peak ≤ 200 MiB.

    .venv/bin/python bench/overpass_parse.py [--elements 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prospectpro.domain.area import Area
from prospectpro.places.coverage import record_coverage
from prospectpro.places.importer import store_live_places
from prospectpro.providers import overpass
from prospectpro.store import migrate
from prospectpro.store.db import Database

TAGS = ("amenity=cafe", "amenity=restaurant", "shop=hairdresser", "amenity=dentist", "craft=plumber")
STREETS = ("Congress Avenue", "South Lamar Boulevard", "East 6th Street", "Guadalupe Street", "Burnet Road")


def answer(n: int, seed: int = 10) -> bytes:
    """An Overpass answer as the public instance serves a city: nodes and ways with contact tags, some unnamed."""
    rng = random.Random(seed)
    elements: list[dict[str, Any]] = []
    for i in range(n):
        key, value = rng.choice(TAGS).split("=")
        tags = {key: value, "name": f"Business {i}", "addr:street": rng.choice(STREETS),
                "addr:housenumber": str(rng.randint(1, 9999)), "addr:city": "Austin", "addr:postcode": "78701"}  # fmt: skip
        if rng.random() < 0.6:
            tags["phone"] = f"+1 512 555 {i % 10000:04d}"
        if rng.random() < 0.5:
            tags["website"] = f"https://business{i}.example"
        if rng.random() < 0.3:
            tags["opening_hours"] = "Mo-Fr 08:00-18:00; Sa 09:00-13:00"
        if rng.random() < 0.05:
            del tags["name"]  # unnamed: skipped
        lat, lon = 30.1 + rng.random() * 0.4, -97.94 + rng.random() * 0.38
        if rng.random() < 0.7:
            elements.append({"type": "node", "id": 10_000_000 + i, "lat": lat, "lon": lon, "tags": tags})
        else:
            elements.append({"type": "way", "id": 20_000_000 + i, "center": {"lat": lat, "lon": lon}, "tags": tags})
    return json.dumps(
        {
            "version": 0.6,
            "generator": "Overpass API 0.7.62",
            "osm3s": {"timestamp_osm_base": "2026-12-01T00:00:00Z"},
            "elements": elements,
        }
    ).encode()


def measure(step: Callable[[], Any], *, traced: bool) -> Any:
    """(wall, CPU) seconds of one call, or (traced) the peak MiB of its Python allocations: tracing slows
    allocation-heavy code several times over, so time and memory are two separate calls. CPU time is this
    process's: on a shared machine, wall time also counts waiting for a core."""
    if not traced:
        started, cpu = time.perf_counter(), time.process_time()
        step()
        return time.perf_counter() - started, time.process_time() - cpu
    tracemalloc.start()
    step()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def peak_rss(step: str, body: bytes) -> float:
    """The peak RSS (MiB) of a fresh process that reads the body from a file, then runs one step."""
    with tempfile.NamedTemporaryFile(suffix=".json") as file:
        file.write(body)
        file.flush()
        command = [sys.executable, __file__, "--rss-of", step, "--body", file.name]
        out = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def rss_of(step: str, path: str) -> None:
    body = Path(path).read_bytes()
    area = Area(30.27, -97.74, 25000, "Austin", "US", (30.1, -97.94, 30.52, -97.56), "relation/1")
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
        migrate.upgrade(db)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if step == "parse":
            json.loads(body)
        else:
            found, _ = overpass.parse(body)
            stored = store_live_places(db, found)
            record_coverage(db, source="overpass", tags=TAGS, area=area, elements=stored)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{max(after, before) / 1024:.1f}")  # ru_maxrss is KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--elements", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rss-of", choices=("parse", "ingest"), help=argparse.SUPPRESS)
    parser.add_argument("--body", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_of:
        rss_of(args.rss_of, args.body)
        return
    body = answer(args.elements)
    area = Area(30.27, -97.74, 25000, "Austin, Texas, United States", "US", (30.1, -97.94, 30.52, -97.56), "relation/1")
    parse_times, parse_peaks, ingest_times, ingest_peaks, stored = [], [], [], [], 0
    phases: list[tuple[float, float, float]] = []
    for round_no in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            db = Database(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
            migrate.upgrade(db)

            def ingest(db: Database = db) -> None:
                nonlocal stored
                t0 = time.process_time()
                elements, _ = overpass.parse(body)
                t1 = time.process_time()
                stored = store_live_places(db, elements)
                t2 = time.process_time()
                record_coverage(db, source="overpass", tags=TAGS, area=area, elements=stored)
                phases.append((t1 - t0, t2 - t1, time.process_time() - t2))

            # Alternate which goes first, so neither always gets the warmer caches.
            steps = [("parse", lambda: json.loads(body)), ("ingest", ingest)]
            for name, step in steps if round_no % 2 == 0 else reversed(steps):
                (parse_times if name == "parse" else ingest_times).append(measure(step, traced=False))
            db.dispose()
    for name, step in (("parse", lambda: json.loads(body)), ("ingest", None)):
        with tempfile.TemporaryDirectory() as tmp:
            db = Database(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
            migrate.upgrade(db)

            def traced_ingest(db: Database = db) -> None:
                elements, _ = overpass.parse(body)
                store_live_places(db, elements)
                record_coverage(db, source="overpass", tags=TAGS, area=area, elements=len(elements))

            peak = measure(step or traced_ingest, traced=True)
            (parse_peaks if name == "parse" else ingest_peaks).append(peak)
            db.dispose()
    parse_s, ingest_s = (statistics.median(w for w, _ in parse_times), statistics.median(w for w, _ in ingest_times))
    parse_cpu, ingest_cpu = (
        statistics.median(c for _, c in parse_times),
        statistics.median(c for _, c in ingest_times),
    )
    ratios = sorted(i[1] / p[1] for p, i in zip(parse_times, ingest_times, strict=True))
    print(f"body: {len(body) / 2**20:.1f} MiB, {args.elements} elements, {stored} stored; {args.rounds} rounds")
    print(
        f"json.loads alone: {parse_s * 1000:.0f} ms wall, {parse_cpu * 1000:.0f} ms CPU (medians), peak {max(parse_peaks):.0f} MiB"
    )
    print(f"parse + store + coverage: {ingest_s * 1000:.0f} ms wall, {ingest_cpu * 1000:.0f} ms CPU (medians), "
          f"peak {max(ingest_peaks):.0f} MiB")  # fmt: skip
    print(f"ratio: {ingest_s / parse_s:.1f}x wall, {ingest_cpu / parse_cpu:.1f}x CPU the parse alone "
          f"(per-round CPU ratios {', '.join(f'{r:.1f}' for r in ratios)}; target <= 5x); peak target <= 200 MiB")  # fmt: skip
    print("ingest phases, CPU ms (medians): overpass.parse {:.0f}, store_live_places {:.0f}, record_coverage {:.0f}".format(
        *(statistics.median(p[i] for p in phases) * 1000 for i in range(3))))  # fmt: skip
    print(f"peak RSS of a fresh process (body read from a file, then one step): json.loads {peak_rss('parse', body):.0f} MiB, "
          f"ingest {peak_rss('ingest', body):.0f} MiB")  # fmt: skip
    print("all rounds (ms wall): parse", [round(w * 1000) for w, _ in parse_times],
          "ingest", [round(w * 1000) for w, _ in ingest_times])  # fmt: skip


if __name__ == "__main__":
    main()
