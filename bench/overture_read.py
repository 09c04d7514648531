"""Reading a city's places out of a multi-file Overture release: bbox row groups vs a full scan.

    .venv/bin/python bench/overture_read.py [--rows 2000000] [--files 8] [--no-append]

Same run: the benchmark writes a release of ``--rows`` places (the real
nested schema, providers/overture.PLACES_SCHEMA) in ``--files`` GeoParquet
files of 10,000-row groups, spatially sorted (a Z-order of the point, as the
real release is sorted) over the contiguous US. Then, each in a fresh
process (so peak memory is its own): the reader's bbox read of a city-sized
box (Austin, 0.4° × 0.4°) and a full scan of the same files with the same
columns. Bytes read are the compressed column-chunk bytes of the row groups
read (the Parquet metadata's sizes) plus each file's footer.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import struct
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import pyarrow as pa  # noqa: E402
import pyarrow.dataset as ds  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from prospectpro.providers.overture import _COLUMNS, PLACES_SCHEMA, ReadStats, bbox_filter, read_box  # noqa: E402

CITY = (30.10, -97.94, 30.50, -97.54)  # south, west, north, east: Austin, TX
WORLD = (25.0, -125.0, 49.0, -66.0)
CATEGORIES = ("dentist", "coffee_shop", "restaurant", "lawyer", "accountant", "hair_salon", "plumbing", "hotel")
ROW_GROUP = 10_000


def _morton(lat: float, lon: float) -> int:
    x = int((lon + 180.0) / 360.0 * 65535)
    y = int((lat + 90.0) / 180.0 * 65535)
    code = 0
    for bit in range(16):
        code |= ((x >> bit) & 1) << (2 * bit) | ((y >> bit) & 1) << (2 * bit + 1)
    return code


def _points(rows: int, seed: int = 12) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    south, west, north, east = WORLD
    city_share = rows // 200  # a city is dense: 0.5 % of the places in its box
    points = [(rng.uniform(south, north), rng.uniform(west, east)) for _ in range(rows - city_share)]
    points += [(rng.uniform(CITY[0], CITY[2]), rng.uniform(CITY[1], CITY[3])) for _ in range(city_share)]
    points.sort(key=lambda p: _morton(*p))
    return points


def _table(points: list[tuple[float, float]], start: int) -> pa.Table:
    n = len(points)
    lats = [p[0] for p in points]
    lons = [p[1] for p in points]
    ids = [f"08f{start + i:013x}" for i in range(n)]
    f32 = pa.float32()
    bbox = pa.StructArray.from_arrays(
        [pa.array(lons, f32), pa.array(lons, f32), pa.array(lats, f32), pa.array(lats, f32)],
        names=["xmin", "xmax", "ymin", "ymax"],
    )
    geometry = pa.array([struct.pack("<BIdd", 1, 1, lon, lat) for lat, lon in points], pa.binary())
    names_type = PLACES_SCHEMA.field("names").type
    names = pa.StructArray.from_arrays(
        [
            pa.array([f"Business {start + i}" for i in range(n)]),
            pa.nulls(n, names_type.field("common").type),
            pa.nulls(n, names_type.field("rules").type),
        ],
        fields=list(names_type),
    )
    cats = pa.StructArray.from_arrays(
        [pa.array([CATEGORIES[(start + i) % len(CATEGORIES)] for i in range(n)]), pa.nulls(n, pa.list_(pa.string()))],
        names=["primary", "alternate"],
    )
    sources_type = PLACES_SCHEMA.field("sources").type
    sources = pa.array(
        [[{"property": "", "dataset": "meta", "record_id": str(start + i), "update_time": "2025-11-01T00:00:00Z",
           "confidence": 0.8, "between": None}] for i in range(n)],
        sources_type,
    )  # fmt: skip
    phones = pa.array([[f"+1512555{(start + i) % 10000:04d}"] for i in range(n)], pa.list_(pa.string()))
    websites = pa.array([[f"https://b{start + i}.example"] for i in range(n)], pa.list_(pa.string()))
    addresses = pa.array(
        [[{"freeform": f"{i % 900 + 1} Main St", "locality": "Town", "postcode": "78701", "region": "TX",
           "country": "US"}] for i in range(n)],
        PLACES_SCHEMA.field("addresses").type,
    )  # fmt: skip
    columns = {
        "id": pa.array(ids),
        "geometry": geometry,
        "bbox": bbox,
        "version": pa.array([1] * n, pa.int32()),
        "sources": sources,
        "names": names,
        "categories": cats,
        "basic_category": pa.nulls(n, pa.string()),
        "confidence": pa.array([0.5 + ((start + i) % 50) / 100 for i in range(n)], pa.float64()),
        "websites": websites,
        "socials": pa.nulls(n, pa.list_(pa.string())),
        "emails": pa.nulls(n, pa.list_(pa.string())),
        "phones": phones,
        "brand": pa.nulls(n, PLACES_SCHEMA.field("brand").type),
        "addresses": addresses,
        "operating_status": pa.array(["open"] * n),
    }
    return pa.Table.from_arrays([columns[f.name] for f in PLACES_SCHEMA], schema=PLACES_SCHEMA)


def write_release(folder: Path, rows: int, files: int) -> float:
    started = time.perf_counter()
    points = _points(rows)
    per_file = -(-rows // files)
    for f in range(files):
        chunk = points[f * per_file : (f + 1) * per_file]
        if chunk:
            pq.write_table(_table(chunk, f * per_file), folder / f"part-{f:05d}.parquet", row_group_size=ROW_GROUP)
    return time.perf_counter() - started


def _bytes_read(folder: Path, box: tuple[float, float, float, float] | None) -> int:
    """Compressed bytes of the wanted columns in the row groups the read touches, plus every footer."""
    total = 0
    expression = bbox_filter(box) if box else None
    dataset = ds.dataset(str(folder), format="parquet")
    for fragment in dataset.get_fragments():
        assert isinstance(fragment, ds.ParquetFileFragment)
        meta = fragment.metadata
        total += meta.serialized_size
        groups = fragment.split_by_row_group(expression) if expression is not None else fragment.split_by_row_group()
        for group in groups:
            rg = meta.row_group(group.row_groups[0].id)
            for c in range(rg.num_columns):
                column = rg.column(c)
                if column.path_in_schema.split(".")[0] in _COLUMNS:
                    total += column.total_compressed_size
    return total


def _peak_rss_mb() -> float:
    """This process's own peak: VmHWM (ru_maxrss keeps the forking parent's peak across exec on Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase(folder: Path, which: str) -> dict[str, object]:
    dataset = ds.dataset(str(folder), format="parquet")
    stats = ReadStats()
    started = time.perf_counter()
    if which == "bbox":
        table = read_box(dataset, CITY, stats=stats)
        rows = table.num_rows
    else:  # the full scan: every row group of every file, the same columns, then the same filter in memory
        table = dataset.to_table(columns=list(_COLUMNS))
        rows = table.filter(bbox_filter(CITY)).num_rows
    seconds = time.perf_counter() - started
    # Peaks before the bytes are counted (that walks every file's metadata, which the read did not need).
    peak_rss, arrow_peak = _peak_rss_mb(), pa.default_memory_pool().max_memory()
    return {
        "which": which,
        "seconds": seconds,
        "rows": rows,
        "row_groups_read": stats.row_groups_read if which == "bbox" else None,
        "bytes_read": _bytes_read(folder, CITY if which == "bbox" else None),
        "peak_rss_mb": peak_rss,
        "arrow_peak_mb": arrow_peak / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--no-append", action="store_true")
    parser.add_argument("--phase", choices=("bbox", "full"))
    parser.add_argument("--folder")
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(Path(args.folder), args.phase)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        wrote = write_release(folder, args.rows, args.files)
        size = sum(p.stat().st_size for p in folder.glob("*.parquet"))
        groups = sum(pq.ParquetFile(p).metadata.num_row_groups for p in folder.glob("*.parquet"))
        results = {}
        for which in ("bbox", "full"):
            out = subprocess.run(
                [sys.executable, __file__, "--phase", which, "--folder", str(folder)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            results[which] = json.loads(out.stdout)
    bbox, full = results["bbox"], results["full"]
    assert bbox["rows"] == full["rows"], (bbox, full)
    ratio = full["bytes_read"] / max(1, bbox["bytes_read"])
    lines = [
        f"- release: {args.rows:,} rows in {args.files} files, {groups} row groups of {ROW_GROUP:,}, "
        f"{size / 1e6:.0f} MB on disk, Z-order sorted (written in {wrote:.0f} s)",
        f"- city bbox {CITY}: {bbox['rows']:,} places",
        f"- bbox read: {bbox['seconds'] * 1000:.0f} ms, {bbox['row_groups_read']} of {groups} row groups, "
        f"{bbox['bytes_read'] / 1e6:.2f} MB read, peak RSS {bbox['peak_rss_mb']:.0f} MB "
        f"(Arrow pool peak {bbox['arrow_peak_mb']:.0f} MB)",
        f"- full scan: {full['seconds'] * 1000:.0f} ms, {full['bytes_read'] / 1e6:.1f} MB read, "
        f"peak RSS {full['peak_rss_mb']:.0f} MB (Arrow pool peak {full['arrow_peak_mb']:.0f} MB)",
        f"- bbox vs full: {ratio:.0f}× less read (target ≥ 20×), {full['seconds'] / bbox['seconds']:.0f}× faster",
    ]
    print("\n".join(lines))
    if not args.no_append:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        head = f"\n### Overture bbox read ({stamp}, {platform.python_version()}, pyarrow {pa.__version__})\n\n"
        with (ROOT / "bench" / "RESULTS.md").open("a") as fh:
            fh.write(head + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
