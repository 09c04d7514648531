"""Cross-source dedup of 10,000 candidates against the exact-fingerprint dedup of the same candidates.

    .venv/bin/python bench/dedup.py [--candidates 10000] [--runs 5] [--no-append]

Same run, same candidates: a city (0.2° × 0.2°) of businesses, half reported
by OSM and, for 60 % of those, again by Overture — the name respelt, the
point 5–60 m off, the phone or website kept or not — plus chains (one name
and head-office domain on many branches). The baseline groups by
``domain.dedup.fingerprint`` alone (today's exact key); the measured run is
``domain.identity.group`` with the same fingerprints. Target: ≤ 10× the
baseline and under 1 s.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from prospectpro.domain.business import Business  # noqa: E402
from prospectpro.domain.dedup import fingerprint  # noqa: E402
from prospectpro.domain.identity import domain_key, group, phone_key  # noqa: E402

M = 1 / 111_195
WORDS = ("smile", "dental", "park", "river", "oak", "main", "city", "law", "coffee", "bakery", "north", "studio")


def candidates(n: int, seed: int = 7) -> tuple[list[Business], int]:
    """(the candidates, how many real businesses they are)."""
    rng = random.Random(seed)
    out: list[Business] = []
    real = 0
    while len(out) < n:
        real += 1
        lat, lon = 30.2 + rng.random() * 0.2, -97.8 + rng.random() * 0.2
        if rng.random() < 0.05:  # a chain's branch
            name, site, phone = "Starbucks", "https://www.starbucks.com", None
        else:
            name = " ".join(rng.sample(WORDS, 3)).title() + f" {real}"
            site, phone = f"https://b{real}.example", f"+1 512 {real % 1000:03d} {real % 10000:04d}"
        osm = Business("osm", f"node/{real}", name, street="Main St", housenumber=str(real % 500), country="US",
                       phone=phone, website=site, latitude=lat, longitude=lon)  # fmt: skip
        out.append(osm)
        if rng.random() < 0.6 and len(out) < n:
            d = (5 + rng.random() * 55) * M
            spelt = name.upper() + (" LLC" if rng.random() < 0.5 else "")
            out.append(
                Business("overture", f"08f{real:012x}", spelt, country="US", latitude=lat + d, longitude=lon,
                         phone=phone if rng.random() < 0.5 else None, website=site if rng.random() < 0.5 else None)
            )  # fmt: skip
    return out[:n], real


def exact(items: list[Business]) -> int:
    keys = [fingerprint(b) for b in items]
    groups: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    return len(groups)


def cross(items: list[Business]) -> int:
    phone_key.cache_clear()  # every run starts cold: no value normalised by an earlier run
    domain_key.cache_clear()
    return len(group(items, [fingerprint(b) for b in items]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--candidates", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    items, real = candidates(args.candidates)
    timings: dict[str, list[float]] = {"exact": [], "cross": []}
    counts: dict[str, int] = {}
    for _ in range(args.runs):
        for name, fn in (("exact", exact), ("cross", cross)):
            started = time.perf_counter()
            counts[name] = fn(items)
            timings[name].append(time.perf_counter() - started)
    e, c = statistics.median(timings["exact"]), statistics.median(timings["cross"])
    lines = [
        f"- {len(items):,} candidates of {real:,} real businesses (OSM + Overture respellings, 5 % chain branches)",
        f"- exact fingerprint: {e * 1000:.0f} ms median of {args.runs}, {counts['exact']:,} groups",
        f"- cross-source identity: {c * 1000:.0f} ms median of {args.runs}, {counts['cross']:,} groups",
        f"- ratio {c / e:.1f}× (target ≤ 10×), under 1 s: {'yes' if c < 1 else 'no'}",
    ]
    print("\n".join(lines))
    if not args.no_append:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        head = f"\n### Cross-source dedup ({stamp}, {platform.python_version()})\n\n"
        with (ROOT / "bench" / "RESULTS.md").open("a") as fh:
            fh.write(head + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
