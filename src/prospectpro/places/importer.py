"""OpenStreetMap extract → the ``places``, ``place_categories`` and ``localities`` tables.

One streaming pass over the file (pyosmium's area support reads relations
first, then everything once more). Businesses are written in batches, each in
its own short transaction, so a city-sized extract never sits in memory and
never holds the SQLite write lock for long. Localities are few and are kept
until the end, because their country may be derived from the businesses
around them.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import math
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import osmium
from osmium.filter import KeyFilter
from sqlalchemy import delete, insert, inspect, select

from prospectpro.domain.business_types import OSM_BUSINESS_KEYS
from prospectpro.errors import InvalidInput
from prospectpro.places.locations import (
    LOCALITY_KINDS,
    METERS_PER_DEGREE,
    country_code,
    distance_m,
    forget_localities,
)
from prospectpro.store.db import Database
from prospectpro.store.schema import datasets, localities, place_categories, places
from prospectpro.store.upsert import upsert

BUSINESS_KEYS = OSM_BUSINESS_KEYS  # the keys whose places are imported, in category order

LOCALITY_RADIUS_M = LOCALITY_KINDS

BUNDLED_FILE = "helsinki-center.osm.pbf"
BATCH_SIZE = 2000

# Spellings a user may type for a locality. Language suffixes only: this
# keeps out keys such as name:etymology:wikidata that hold ids, not names.
_NAME_KEY = re.compile(
    r"^(?:name|alt_name|official_name|short_name|old_name|loc_name)(?::[a-z]{2,3}(?:-[A-Za-z0-9]+)*)?$"
)
_COUNTRY_KEYS = ("addr:country", "is_in:country_code", "ISO3166-1", "ISO3166-1:alpha2")
_GRID_DEG = 0.02  # ~2 km cells for the country lookup


@dataclass(frozen=True, slots=True)
class ImportStats:
    dataset: str
    places: int
    localities: int
    seconds: float
    skipped: int = 0  # named businesses/localities whose position the extract lacks


@dataclass(slots=True)
class _Locality:
    osm_type: str
    osm_id: int
    name: str
    names: list[str]
    kind: str
    latitude: float
    longitude: float
    country: str | None


@dataclass(slots=True)
class _Run:
    """What one import has seen so far."""

    dataset: str
    places: int = 0
    skipped: int = 0
    batch: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    seen_places: set[tuple[str, int]] = field(default_factory=set)
    localities: list[_Locality] = field(default_factory=list)
    # Businesses with a known country, bucketed on a coarse grid for the
    # "most common country within the radius" lookup.
    country_grid: dict[tuple[int, int], list[tuple[float, float, str]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # A multipolygon relation is located through its area, but the area lacks
    # the relation's "type" tag; whichever of the two comes first waits here
    # for the other. Relations left waiting have no area (members cut off).
    relation_tags: dict[int, dict[str, str]] = field(default_factory=dict)
    relation_areas: dict[int, tuple[dict[str, str], tuple[float, float]]] = field(default_factory=dict)
    # The box of every position stored (south, west, north, east): the extract's bounds with its header's box.
    box: list[float] = field(default_factory=lambda: [90.0, 180.0, -90.0, -180.0])


def import_pbf(db: Database, path: Path, *, dataset: str | None = None) -> ImportStats:
    """Import (or re-import) an .osm.pbf extract; rows of the same OSM object are replaced."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}")
    name = (dataset or path.name).strip()
    if not name or len(name) > 200:
        raise InvalidInput("dataset name must be 1..200 characters")
    started = time.monotonic()
    digest = file_sha256(path)

    run = _Run(dataset=name)
    try:
        for obj in _read(path):
            _take(db, run, obj)
    except RuntimeError as exc:  # libosmium reports unreadable input this way
        raise InvalidInput(f"cannot read OSM file {path.name}: {exc}") from exc
    for osm_id, (tags, where) in run.relation_areas.items():
        _store(db, run, "r", osm_id, tags, where)
    _flush(db, run)
    run.skipped += len(run.relation_tags)

    _fill_countries(run.localities, run.country_grid)
    _write_localities(db, run.localities, name)
    _remove_stale(db, name, run.seen_places, {(lo.osm_type, lo.osm_id) for lo in run.localities})
    _record_dataset(db, name, digest, run.places, len(run.localities), _bounds(path, run.box))
    forget_localities(db)
    return ImportStats(
        dataset=name,
        places=run.places,
        localities=len(run.localities),
        seconds=round(time.monotonic() - started, 3),
        skipped=run.skipped,
    )


def _take(db: Database, run: _Run, obj: Any) -> None:
    tags = dict(obj.tags)
    if not _wanted(tags):
        return
    if obj.is_relation():
        waiting = run.relation_areas.pop(obj.id, None)
        if waiting is None:
            run.relation_tags[obj.id] = tags
        else:
            _store(db, run, "r", obj.id, tags, waiting[1])
        return
    osm_type, osm_id = _identity(obj)
    where = _position(obj)
    if where is None:
        run.skipped += 1
        return
    if osm_type == "r":
        full_tags = run.relation_tags.pop(osm_id, None)
        if full_tags is None:
            run.relation_areas[osm_id] = (tags, where)
            return
        tags = full_tags
    _store(db, run, osm_type, osm_id, tags, where)


def _wanted(tags: Mapping[str, str]) -> bool:
    if not tags.get("name", "").strip():
        return False
    return bool(business_tags(tags)) or tags.get("place") in LOCALITY_RADIUS_M


def _store(
    db: Database, run: _Run, osm_type: str, osm_id: int, tags: dict[str, str], where: tuple[float, float]
) -> None:
    lat, lon = where
    run.box[:] = [min(run.box[0], lat), min(run.box[1], lon), max(run.box[2], lat), max(run.box[3], lon)]
    categories = business_tags(tags)
    if categories:
        run.batch[(osm_type, osm_id)] = _place_row(
            osm_type, osm_id, tags, categories, lat, lon, run.dataset
        )
        country = country_code(tags.get("addr:country"))
        if country:
            run.country_grid[_cell(lat, lon)].append((lat, lon, country))
        if len(run.batch) >= BATCH_SIZE:
            _flush(db, run)
    if tags.get("place") in LOCALITY_RADIUS_M:
        run.localities.append(_locality(osm_type, osm_id, tags, lat, lon))


def ensure_bundled_places(db: Database) -> ImportStats | None:
    """Import the extract shipped with the package unless this exact file was imported already."""
    resource = importlib.resources.files("prospectpro") / "data" / BUNDLED_FILE
    with importlib.resources.as_file(resource) as path:
        stat = path.stat()
        digest = _sha256_cached(str(path), stat.st_size, stat.st_mtime_ns)
        with db.read() as conn:
            known = conn.execute(
                select(datasets.c.name).where(datasets.c.sha256 == digest).limit(1)
            ).first()
        if known is not None:
            return None
        return import_pbf(db, path)


@lru_cache(maxsize=4)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    # Called at every start; size and mtime in the key notice a replaced file.
    return file_sha256(Path(path))


def file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


# --- reading -----------------------------------------------------------------


def _read(path: Path) -> Iterator[Any]:
    wanted = KeyFilter(*BUSINESS_KEYS, "place")
    # The filters only decide what reaches Python: node locations and area
    # assembly run before them, so ways still get their coordinates.
    processor = (
        osmium.FileProcessor(str(path))
        .with_locations()
        .with_areas(wanted)
        .with_filter(wanted)
        .with_filter(KeyFilter("name"))
    )
    for obj in processor:
        if obj.is_area() and obj.from_way():  # type: ignore[union-attr]  # with_areas(): only OSM objects and areas come
            # A closed way is located from its own nodes (see _position), which also
            # covers ways clipped at the extract's edge that fail to form an area.
            continue
        yield obj


def _identity(obj: Any) -> tuple[str, int]:
    if obj.is_area():
        return ("w" if obj.from_way() else "r"), obj.orig_id()
    return obj.type_str(), obj.id


def _position(obj: Any) -> tuple[float, float] | None:
    """(lat, lon) of a node, or the centroid of a way / multipolygon; None if unknown."""
    if obj.is_node():
        loc = obj.location
        return (loc.lat, loc.lon) if loc.valid() else None
    if obj.is_way():
        points = [(n.location.lon, n.location.lat) for n in obj.nodes if n.location.valid()]
        complete = len(points) == len(obj.nodes)
        if complete and obj.is_closed() and len(points) >= 4:
            return _centroid([points])
        return _mean(points)
    rings = [[(n.location.lon, n.location.lat) for n in ring] for ring in obj.outer_rings()]
    return _centroid(rings)


def _centroid(rings: list[list[tuple[float, float]]]) -> tuple[float, float] | None:
    """Area-weighted centroid of closed rings of (lon, lat) → (lat, lon).

    Planar in degrees: the centroid commutes with the affine lon/lat scaling,
    so this is exact enough at the scale of one business or town.
    """
    if not any(rings):
        return None
    # Relative to one vertex: absolute degrees would cancel out the tiny area of a building.
    ox, oy = next(ring[0] for ring in rings if ring)
    total = cx = cy = 0.0
    for ring in rings:
        for (x0, y0), (x1, y1) in zip(ring, ring[1:], strict=False):
            x0, y0, x1, y1 = x0 - ox, y0 - oy, x1 - ox, y1 - oy
            cross = x0 * y1 - x1 * y0
            total += cross
            cx += (x0 + x1) * cross
            cy += (y0 + y1) * cross
    if abs(total) < 1e-16:  # degenerate (a line folded on itself): fall back to the vertices
        return _mean([p for ring in rings for p in ring])
    return oy + cy / (3 * total), ox + cx / (3 * total)


def _mean(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    unique = list(dict.fromkeys(points))
    if not unique:
        return None
    return (
        sum(lat for _, lat in unique) / len(unique),
        sum(lon for lon, _ in unique) / len(unique),
    )


# --- businesses --------------------------------------------------------------


def business_tags(tags: Mapping[str, str]) -> list[str]:
    """The object's business tags as "key=value", in BUSINESS_KEYS order."""
    return [f"{k}={v}" for k in BUSINESS_KEYS if (v := tags.get(k, "").strip())]


def _place_row(
    osm_type: str,
    osm_id: int,
    tags: dict[str, str],
    categories: list[str],
    lat: float,
    lon: float,
    dataset: str,
) -> dict[str, Any]:
    return {
        "osm_type": osm_type,
        "osm_id": osm_id,
        "name": tags["name"].strip()[:300],
        "category": categories[0][:100],
        "tags": tags,
        "latitude": lat,
        "longitude": lon,
        "dataset": dataset,
        "_categories": list(dict.fromkeys(c[:100] for c in categories)),
    }


def _flush(db: Database, run: _Run) -> None:
    if run.batch:
        _write_places(db, list(run.batch.values()))
        run.places += len(run.batch)
        run.seen_places.update(run.batch)
        run.batch.clear()


def _write_places(db: Database, rows: list[dict[str, Any]]) -> None:
    columns = tuple(c for c in rows[0] if c != "_categories")
    values = [tuple(dumps(row[c]) if c == "tags" else row[c] for c in columns) for row in rows]
    categories = {(row["osm_type"], row["osm_id"]): row["_categories"] for row in rows}
    _write_rows(db, columns, values, categories)


def _write_rows(
    db: Database,
    columns: tuple[str, ...],
    rows: list[tuple[Any, ...]],
    categories: Mapping[tuple[str, int], list[str]],
    keep: tuple[str, ...] = (),
) -> None:
    """Places rows (``columns``, the tags as JSON text; upserted on their OSM identity, ``keep``
    columns left as they are) and their business tags (``categories``, by OSM identity)."""
    updated = tuple(c for c in _updated(dict.fromkeys(columns)) if c not in keep)
    with db.write() as conn:
        # The driver's own executemany, then one SELECT of the ids. Through SQLAlchemy's
        # executemany (and worse, RETURNING) binding each row cost more than the rest of an
        # Overpass answer's ingest together (bench/overpass_parse.py, issue 10).
        conn.exec_driver_sql(_upsert_sql(conn.dialect.name, columns, updated), rows)
        # Ids are integers (int() makes sure): written into the statement, they need no binding.
        osm_ids = ",".join(str(int(i)) for _, i in categories)
        found = conn.exec_driver_sql(f"SELECT id, osm_type, osm_id FROM places WHERE osm_id IN ({osm_ids})").all()
        ids = {(t, i): pid for pid, t, i in found if (t, i) in categories}
        if ids:
            place_ids = ",".join(str(int(pid)) for pid in ids.values())
            conn.exec_driver_sql(f"DELETE FROM place_categories WHERE place_id IN ({place_ids})")
        marker = _MARKERS[conn.dialect.name]
        conn.exec_driver_sql(
            f"INSERT INTO place_categories (place_id, tag) VALUES ({marker}, {marker})",
            [(pid, tag) for key, pid in ids.items() for tag in categories[key]],
        )


_MARKERS = {"sqlite": "?", "postgresql": "%s"}  # each driver's positional parameter
dumps = json.JSONEncoder(ensure_ascii=True, separators=(", ", ": ")).encode  # as SQLAlchemy's JSON type writes it


@lru_cache(maxsize=8)
def _upsert_sql(dialect: str, columns: tuple[str, ...], updated: tuple[str, ...]) -> str:
    """INSERT … ON CONFLICT (osm_type, osm_id) DO UPDATE: the same words on SQLite and PostgreSQL."""
    if dialect not in _MARKERS:
        raise NotImplementedError(f"ProspectPro does not support {dialect} (PostgreSQL and SQLite only)")
    marker = _MARKERS[dialect]
    # The tags arrive as JSON text; PostgreSQL's column is JSONB.
    values = ", ".join(f"CAST({marker} AS JSONB)" if c == "tags" and dialect == "postgresql" else marker for c in columns)
    sets = ", ".join(f"{c} = excluded.{c}" for c in updated)
    return (
        f"INSERT INTO places ({', '.join(columns)}) VALUES ({values}) "
        f"ON CONFLICT ({', '.join(OSM_KEY)}) DO UPDATE SET {sets}"
    )


OSM_KEY = ("osm_type", "osm_id")  # what a re-import matches on: a row's id stays stable


def _updated(row: Mapping[str, Any]) -> tuple[str, ...]:
    """The columns a re-import overwrites: all but the key."""
    return tuple(c for c in row if c not in OSM_KEY)


# --- localities --------------------------------------------------------------


def _locality(osm_type: str, osm_id: int, tags: dict[str, str], lat: float, lon: float) -> _Locality:
    name = tags["name"].strip()
    return _Locality(
        osm_type=osm_type,
        osm_id=osm_id,
        name=name,
        names=locality_names(tags),
        kind=tags["place"],
        latitude=lat,
        longitude=lon,
        country=next((c for c in (country_code(tags.get(k)) for k in _COUNTRY_KEYS) if c), None),
    )


def locality_names(tags: Mapping[str, str]) -> list[str]:
    """Every spelling of a place, its main name first; ";" separates several values."""
    spellings = [tags["name"]]
    spellings += [v for k, v in tags.items() if k != "name" and _NAME_KEY.match(k)]
    names = (part.strip() for value in spellings for part in value.split(";"))
    return list(dict.fromkeys(n for n in names if n))


def _cell(lat: float, lon: float) -> tuple[int, int]:
    return math.floor(lat / _GRID_DEG), math.floor(lon / _GRID_DEG)


def _fill_countries(
    found: list[_Locality], grid: Mapping[tuple[int, int], list[tuple[float, float, str]]]
) -> None:
    for lo in found:
        if lo.country is None:
            lo.country = _common_country(lo, grid)
    # Still unknown (no addressed business nearby): take the country of the
    # smallest locality that contains it, e.g. a hamlet inside a town.
    for lo in found:
        if lo.country is not None:
            continue
        around = [
            other
            for other in found
            if other.country is not None
            and distance_m(lo.latitude, lo.longitude, other.latitude, other.longitude)
            <= LOCALITY_RADIUS_M[other.kind]
        ]
        if around:
            lo.country = min(around, key=lambda o: LOCALITY_RADIUS_M[o.kind]).country


def _common_country(
    lo: _Locality, grid: Mapping[tuple[int, int], list[tuple[float, float, str]]]
) -> str | None:
    radius = LOCALITY_RADIUS_M[lo.kind]
    dlat = radius / (METERS_PER_DEGREE * 0.99)
    dlon = dlat / max(math.cos(math.radians(min(89.0, abs(lo.latitude) + dlat))), 0.01)
    (lat0, lon0), (lat1, lon1) = (
        _cell(lo.latitude - dlat, lo.longitude - dlon),
        _cell(lo.latitude + dlat, lo.longitude + dlon),
    )
    votes: Counter[str] = Counter()
    for i in range(lat0, lat1 + 1):
        for j in range(lon0, lon1 + 1):
            for lat, lon, country in grid.get((i, j), ()):
                if distance_m(lo.latitude, lo.longitude, lat, lon) <= radius:
                    votes[country] += 1
    return votes.most_common(1)[0][0] if votes else None


def _write_localities(db: Database, found: list[_Locality], dataset: str) -> None:
    rows = [
        {
            "osm_type": lo.osm_type,
            "osm_id": lo.osm_id,
            "name": lo.name[:300],
            "names": lo.names,
            "kind": lo.kind,
            "latitude": lo.latitude,
            "longitude": lo.longitude,
            "radius_m": LOCALITY_RADIUS_M[lo.kind],
            "country": lo.country,
            "dataset": dataset,
        }
        for lo in found
    ]
    for start in range(0, len(rows), BATCH_SIZE):
        chunk = rows[start : start + BATCH_SIZE]
        with db.write() as conn:
            upsert(conn, localities, chunk, OSM_KEY, _updated(chunk[0]))


# --- bookkeeping -------------------------------------------------------------


def _remove_stale(
    db: Database, dataset: str, kept_places: set[tuple[str, int]], kept_localities: set[tuple[str, int]]
) -> None:
    """Drop rows this dataset imported before that the new file no longer has (closed shops)."""
    with db.read() as conn:
        stale_places = [
            pid
            for pid, t, i in conn.execute(
                select(places.c.id, places.c.osm_type, places.c.osm_id).where(places.c.dataset == dataset)
            )
            if (t, i) not in kept_places
        ]
        stale_localities = [
            lid
            for lid, t, i in conn.execute(
                select(localities.c.id, localities.c.osm_type, localities.c.osm_id).where(
                    localities.c.dataset == dataset
                )
            )
            if (t, i) not in kept_localities
        ]
    for start in range(0, len(stale_places), BATCH_SIZE):
        ids = stale_places[start : start + BATCH_SIZE]
        with db.write() as conn:
            conn.execute(delete(place_categories).where(place_categories.c.place_id.in_(ids)))
            conn.execute(delete(places).where(places.c.id.in_(ids)))
    if stale_localities:
        with db.write() as conn:
            conn.execute(delete(localities).where(localities.c.id.in_(stale_localities)))


def _bounds(path: Path, seen: list[float]) -> tuple[float, float, float, float] | None:
    """The extract's bounds: its header's box (what it was cut to) joined with every position stored."""
    south, west, north, east = seen
    try:
        box = osmium.io.Reader(str(path), osmium.osm.osm_entity_bits.NOTHING).header().box()
    except RuntimeError:
        box = None
    if box is not None and box.valid():
        south, west = min(south, box.bottom_left.lat), min(west, box.bottom_left.lon)
        north, east = max(north, box.top_right.lat), max(east, box.top_right.lon)
    return (south, west, north, east) if south <= north and west <= east else None


def _record_dataset(
    db: Database,
    name: str,
    digest: str,
    n_places: int,
    n_localities: int,
    bounds: tuple[float, float, float, float] | None = None,
) -> None:
    south, west, north, east = bounds or (None, None, None, None)
    row: dict[str, Any] = {
        "name": name,
        "sha256": digest,
        "places": n_places,
        "localities": n_localities,
        "imported_at": datetime.now(UTC),
    }
    with db.write() as conn:
        # A store before revision 0007 has no bounds columns (0007 computes them from the rows).
        if "south" in {c["name"] for c in inspect(conn).get_columns("datasets")}:
            row.update(south=south, west=west, north=north, east=east)
        conn.execute(delete(datasets).where(datasets.c.name == name))
        conn.execute(insert(datasets).values(**row))


# --- live results (providers/overpass.py) ---------------------------------------------

LIVE_DATASET = "live:overpass"  # never a row of ``datasets``: live data neither moves an extract's bounds nor
# counts as imported; a re-import of an extract holding the same object takes it over.


def store_live_places(db: Database, elements: Iterable[Any], *, dataset: str = LIVE_DATASET) -> int:
    """Named business objects of an Overpass answer (osm_type, osm_id, latitude, longitude, tags) into the
    places index, in batches; an object already there is updated in place but keeps its dataset."""
    stored = 0
    batch: dict[tuple[str, int], tuple[Any, ...]] = {}
    tags_of: dict[tuple[str, int], list[str]] = {}
    for element in elements:
        tags = element.tags
        categories = business_tags(tags)
        name = tags.get("name", "").strip()
        if not categories or not name:
            continue
        key = (element.osm_type, element.osm_id)
        batch[key] = (
            element.osm_type, element.osm_id, name[:300], categories[0][:100], dumps(tags),
            element.latitude, element.longitude, dataset,
        )  # fmt: skip
        tags_of[key] = list(dict.fromkeys(c[:100] for c in categories))
        if len(batch) >= BATCH_SIZE:
            _write_rows(db, _LIVE_COLUMNS, list(batch.values()), tags_of, keep=("dataset",))
            stored += len(batch)
            batch.clear()
            tags_of.clear()
    if batch:
        _write_rows(db, _LIVE_COLUMNS, list(batch.values()), tags_of, keep=("dataset",))
        stored += len(batch)
    return stored


_LIVE_COLUMNS = ("osm_type", "osm_id", "name", "category", "tags", "latitude", "longitude", "dataset")


__all__ = [
    "BUSINESS_KEYS",
    "LIVE_DATASET",
    "LOCALITY_RADIUS_M",
    "ImportStats",
    "business_tags",
    "ensure_bundled_places",
    "file_sha256",
    "import_pbf",
    "locality_names",
    "store_live_places",
]
