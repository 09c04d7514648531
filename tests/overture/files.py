"""Overture places GeoParquet files written by the tests, in the release's real (nested) schema."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from prospectpro.providers.overture import PLACES_SCHEMA


def wkb_point(lon: float, lat: float) -> bytes:
    return struct.pack("<BIdd", 1, 1, lon, lat)  # little-endian, type 1 (Point)


def place(
    ident: str,
    name: str | None,
    lat: float,
    lon: float,
    *,
    category: str = "dentist",
    alternate: Sequence[str] = (),
    basic: str | None = None,
    confidence: float = 0.9,
    status: str | None = "open",
    phones: Sequence[str] = (),
    websites: Sequence[str] = (),
    emails: Sequence[str] = (),
    socials: Sequence[str] = (),
    freeform: str | None = None,
    locality: str | None = None,
    postcode: str | None = None,
    region: str | None = None,
    country: str | None = "US",
    brand: str | None = None,
    datasets: Sequence[str] = ("meta",),
) -> dict[str, Any]:
    return {
        "id": ident,
        "geometry": wkb_point(lon, lat),
        "bbox": {"xmin": lon, "xmax": lon, "ymin": lat, "ymax": lat},
        "version": 1,
        "sources": [
            {"property": "", "dataset": d, "record_id": f"{d}-{ident}", "update_time": "2025-11-01T00:00:00Z",
             "confidence": confidence, "between": None}
            for d in datasets
        ],
        "names": None if name is None else {"primary": name, "common": None, "rules": None},
        "categories": {"primary": category, "alternate": list(alternate) or None},
        "basic_category": basic,
        "confidence": confidence,
        "websites": list(websites) or None,
        "socials": list(socials) or None,
        "emails": list(emails) or None,
        "phones": list(phones) or None,
        "brand": None if brand is None else {"wikidata": None, "names": {"primary": brand, "common": None,
                                                                          "rules": None}},
        "addresses": [{"freeform": freeform, "locality": locality, "postcode": postcode, "region": region,
                       "country": country}],
        "operating_status": status,
    }  # fmt: skip


def write(path: Path, rows: Sequence[dict[str, Any]], *, row_group_size: int | None = None) -> Path:
    """One GeoParquet file (the GeoParquet "geo" metadata included); rows in the order given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(list(rows), schema=PLACES_SCHEMA)
    geo = b'{"version":"1.1.0","primary_column":"geometry","columns":{"geometry":{"encoding":"WKB","geometry_types":["Point"]}}}'
    table = table.replace_schema_metadata({b"geo": geo})
    pq.write_table(table, path, row_group_size=row_group_size or max(1, len(rows)))
    return path
