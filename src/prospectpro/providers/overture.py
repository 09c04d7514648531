"""The free discovery source ``overture``: Overture Maps places, read from a release's GeoParquet files.

The data of one release (``overture_path``) is a local folder or file, or an
S3 prefix read anonymously (``s3://overturemaps-us-west-2/release/<R>/theme=places/type=place/``),
optionally through an S3-compatible endpoint (``overture_s3_endpoint``).

Reading is a pyarrow dataset scan whose filter is on the ``bbox`` struct
columns: row groups whose bbox statistics miss the area are skipped without
being read, and the release is spatially sorted, so a city reads a small part
of it. Kept: places whose category maps to the campaign's business type,
whose ``operating_status`` is open and whose ``confidence`` is at least
``overture_min_confidence``.

A remote release read for an area is kept in the local places cache
(``<data_dir>/overture/<release>/``) with a coverage record (source
``overture``, tag = the release), so a later campaign for the same area and
release — and every campaign after ``places import-overture`` — reads it
locally, with no network. Every value comes from the record; a missing one
stays None. Each record's own ``sources`` (datasets) decide its licence.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from prospectpro.config import Settings
from prospectpro.domain.area import Area
from prospectpro.domain.business import Business
from prospectpro.domain.business_types import all_business_types
from prospectpro.domain.clock import utcnow
from prospectpro.gate.errors import ProviderError, ProviderErrorKind
from prospectpro.places.coverage import Box, area_box, covering, record_coverage, served_locally
from prospectpro.providers.protocols import CallContext, DiscoveryQuery
from prospectpro.store.db import Database

NAME = "overture"
# The schema pinned here is the places schema of the releases of late 2025 (schema v1.x): names/categories
# structs, list columns, the bbox struct, WKB geometry, operating_status; basic_category where present.
PINNED_RELEASE = "2025-12-17.0"
PUBLIC_BUCKET = "overturemaps-us-west-2"
OPEN = "open"
# A record's licence follows its sources' datasets (Overture's places guide); the rest is CDLA-Permissive-2.0.
DATASET_LICENCES: Mapping[str, str] = {
    "alltheplaces": "CC0-1.0",
    "foursquare": "Apache-2.0",
}
DEFAULT_LICENCE = "CDLA-Permissive-2.0"
ATTRIBUTION = (
    "© Overture Maps Foundation (overturemaps.org); places data under CDLA-Permissive-2.0, Apache-2.0, CC0-1.0"
)

_RELEASE_IN_PATH = re.compile(r"release/([^/]+)/")
# A place's coverage is long-lived: a release does not change, so its cached area holds until the release does.
_RELEASE_COVERAGE_DAYS = 3650.0

_NAMES = pa.struct(
    [
        ("primary", pa.string()),
        ("common", pa.map_(pa.string(), pa.string())),
        (
            "rules",
            pa.list_(
                pa.struct(
                    [
                        ("variant", pa.string()),
                        ("language", pa.string()),
                        ("value", pa.string()),
                        ("between", pa.list_(pa.float64())),
                        ("side", pa.string()),
                    ]
                )
            ),
        ),
    ]
)
PLACES_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("geometry", pa.binary()),
        (
            "bbox",
            pa.struct([("xmin", pa.float32()), ("xmax", pa.float32()), ("ymin", pa.float32()), ("ymax", pa.float32())]),
        ),
        ("version", pa.int32()),
        (
            "sources",
            pa.list_(
                pa.struct(
                    [
                        ("property", pa.string()),
                        ("dataset", pa.string()),
                        ("record_id", pa.string()),
                        ("update_time", pa.string()),
                        ("confidence", pa.float64()),
                        ("between", pa.list_(pa.float64())),
                    ]
                )
            ),
        ),
        ("names", _NAMES),
        ("categories", pa.struct([("primary", pa.string()), ("alternate", pa.list_(pa.string()))])),
        ("basic_category", pa.string()),
        ("confidence", pa.float64()),
        ("websites", pa.list_(pa.string())),
        ("socials", pa.list_(pa.string())),
        ("emails", pa.list_(pa.string())),
        ("phones", pa.list_(pa.string())),
        ("brand", pa.struct([("wikidata", pa.string()), ("names", _NAMES)])),
        (
            "addresses",
            pa.list_(
                pa.struct(
                    [
                        ("freeform", pa.string()),
                        ("locality", pa.string()),
                        ("postcode", pa.string()),
                        ("region", pa.string()),
                        ("country", pa.string()),
                    ]
                )
            ),
        ),
        ("operating_status", pa.string()),
    ]
)
# What discovery reads: the rest (names.rules, geometry) is not needed, so it is not read.
_COLUMNS = ("id", "bbox", "sources", "names", "categories", "basic_category", "confidence", "websites",
            "socials", "emails", "phones", "brand", "addresses", "operating_status")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Place:
    """One Overture record, as written (before it becomes a Business)."""

    id: str
    name: str
    latitude: float
    longitude: float
    category: str | None
    categories: tuple[str, ...]
    confidence: float | None
    operating_status: str | None
    addresses: tuple[dict[str, str | None], ...]
    phones: tuple[str, ...]
    websites: tuple[str, ...]
    emails: tuple[str, ...]
    socials: tuple[str, ...]
    brand: str | None
    sources: tuple[dict[str, Any], ...]

    @property
    def licence(self) -> str:
        return record_licence(self.sources)


@dataclass
class ReadStats:
    files: int = 0
    row_groups_total: int = 0
    row_groups_read: int = 0
    rows_read: int = 0
    seconds: float = 0.0


class Places(list[Business]):
    """Discovery's answer: the businesses, and what was left out (the discovery stage reads ``skipped``)."""

    skipped: dict[str, int]
    licences: dict[str, str]  # overture id → licence
    low_confidence: int

    def __init__(self, items: Iterable[Business] = (), skipped: dict[str, int] | None = None) -> None:
        super().__init__(items)
        self.skipped = skipped or {}
        self.licences = {}
        self.low_confidence = 0


@dataclass(frozen=True)
class Location:
    """Where a release's places are: a filesystem and a path in it."""

    filesystem: pafs.FileSystem
    path: str
    release: str
    remote: bool = False
    label: str = ""
    extra: dict[str, str] = field(default_factory=dict)


def record_licence(sources: Iterable[Mapping[str, Any]]) -> str:
    """The licence a record's sources require: the most demanding among its datasets'."""
    found = {DATASET_LICENCES.get(str(s.get("dataset") or "").strip().lower(), DEFAULT_LICENCE) for s in sources}
    for licence in (DEFAULT_LICENCE, "Apache-2.0", "CC0-1.0"):  # attribution-bearing first
        if licence in found:
            return licence
    return DEFAULT_LICENCE


def enabled(settings: Settings) -> bool:
    return settings.overture_path.strip().lower() not in ("", "off")


def release_of(settings: Settings) -> str:
    if settings.overture_release:
        return settings.overture_release
    found = _RELEASE_IN_PATH.search(settings.overture_path)
    return found.group(1) if found else "local"


def locate(settings: Settings) -> Location:
    """The filesystem and path of ``overture_path`` (no I/O: a remote store is first reached when read)."""
    raw = settings.overture_path.strip()
    release = release_of(settings)
    if raw.startswith("s3://"):
        options: dict[str, Any] = {
            "anonymous": True,
            "region": settings.overture_s3_region,
            "connect_timeout": settings.overture_connect_timeout,
            "request_timeout": settings.overture_connect_timeout * 4,
            # Bounded retries: an unreachable store must fail the source quickly, not stall the campaign.
            "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=2),
        }
        if settings.overture_s3_endpoint:
            endpoint = settings.overture_s3_endpoint
            options["endpoint_override"] = endpoint.split("://", 1)[-1]
            options["scheme"] = "https" if endpoint.startswith("https://") else "http"
        return Location(pafs.S3FileSystem(**options), raw.removeprefix("s3://").rstrip("/"), release, True, raw)
    return Location(pafs.LocalFileSystem(), str(Path(raw).expanduser()), release, False, raw)


def open_dataset(location: Location) -> ds.Dataset:
    try:
        return ds.dataset(location.path, format="parquet", filesystem=location.filesystem, partitioning="hive")
    except (OSError, pa.ArrowException, FileNotFoundError) as exc:
        raise _failure(location, exc) from None


def bbox_filter(box: Box) -> ds.Expression:
    """Places whose bbox intersects (south, west, north, east): row-group statistics prune the rest."""
    south, west, north, east = box
    bbox = ("bbox",)
    return (
        (ds.field(*bbox, "xmin") <= east)
        & (ds.field(*bbox, "xmax") >= west)
        & (ds.field(*bbox, "ymin") <= north)
        & (ds.field(*bbox, "ymax") >= south)
    )


def read_box(dataset: ds.Dataset, box: Box, *, columns: Sequence[str] | None = _COLUMNS,
             stats: ReadStats | None = None) -> pa.Table:  # fmt: skip
    """The records whose bbox intersects ``box``, reading only the row groups whose statistics may match."""
    stats = stats if stats is not None else ReadStats()
    started = time.perf_counter()
    expression = bbox_filter(box)
    wanted = [c for c in columns if c in dataset.schema.names] if columns is not None else None
    tables: list[pa.Table] = []
    for fragment in dataset.get_fragments():
        stats.files += 1
        assert isinstance(fragment, ds.ParquetFileFragment)
        stats.row_groups_total += fragment.metadata.num_row_groups
        for group in fragment.split_by_row_group(expression, schema=dataset.schema):
            stats.row_groups_read += 1
            table = group.to_table(schema=dataset.schema, columns=wanted, filter=expression)
            stats.rows_read += group.row_groups[0].num_rows if group.row_groups else 0
            tables.append(table)
    stats.seconds = time.perf_counter() - started
    if not tables:
        schema = dataset.schema if wanted is None else pa.schema([dataset.schema.field(c) for c in wanted])
        return schema.empty_table()
    return pa.concat_tables(tables)


def places_of(table: pa.Table) -> Iterator[Place]:
    for row in table.to_pylist():
        place = to_place(row)
        if place is not None:
            yield place


def to_place(row: Mapping[str, Any]) -> Place | None:
    names = row.get("names") or {}
    name = (names.get("primary") or "").strip()
    bbox = row.get("bbox") or {}
    if not name or None in (bbox.get("xmin"), bbox.get("xmax"), bbox.get("ymin"), bbox.get("ymax")):
        return None  # no name: no business to list; no position: no place in an area
    categories = row.get("categories") or {}
    primary = categories.get("primary")
    alternates = [c for c in categories.get("alternate") or () if c]
    basic = row.get("basic_category")
    brand = row.get("brand") or {}
    brand_names = brand.get("names") or {}
    return Place(
        id=str(row["id"]),
        name=name,
        # A place is a point: its bbox is that point (float32, so the centre of the box).
        latitude=round((float(bbox["ymin"]) + float(bbox["ymax"])) / 2, 7),
        longitude=round((float(bbox["xmin"]) + float(bbox["xmax"])) / 2, 7),
        category=primary,
        categories=tuple(dict.fromkeys(c for c in (primary, *alternates, basic) if c)),
        confidence=row.get("confidence"),
        operating_status=row.get("operating_status"),
        addresses=tuple(dict(a) for a in row.get("addresses") or () if a),
        phones=tuple(p.strip() for p in row.get("phones") or () if p and p.strip()),
        websites=tuple(w.strip() for w in row.get("websites") or () if w and w.strip()),
        emails=tuple(e.strip() for e in row.get("emails") or () if e and e.strip()),
        socials=tuple(s.strip() for s in row.get("socials") or () if s and s.strip()),
        brand=brand_names.get("primary"),
        sources=tuple(dict(s) for s in row.get("sources") or () if s),
    )


def to_business(place: Place, fetched_at: str | None = None) -> Business:
    """A place as a Business: each field from the record's column that holds it, or None."""
    address = place.addresses[0] if place.addresses else {}
    country = (address.get("country") or "").strip().upper() or None
    return Business(
        source=NAME,
        source_id=place.id,
        name=place.name,
        category=place.category,
        # Overture's street line is freeform ("700 Congress Ave"): kept whole, never split by guessing.
        street=address.get("freeform") or None,
        postcode=address.get("postcode") or None,
        city=address.get("locality") or None,
        country=country if country and len(country) == 2 else None,
        phone=place.phones[0] if place.phones else None,
        website=place.websites[0] if place.websites else None,
        email=place.emails[0] if place.emails else None,
        latitude=place.latitude,
        longitude=place.longitude,
        fetched_at=fetched_at,
    )


def categories_for(type_name: str, tags: Sequence[str]) -> set[str]:
    """The Overture categories of a business type (business_types' second column); a raw-tag type: its values."""
    for bt in all_business_types():
        if bt.name == type_name:
            return set(bt.overture)
    return {type_name, *(t.partition("=")[2] for t in tags)}


def in_area(place: Place, area: Area) -> bool:
    from prospectpro.places.locations import distance_m

    south, west, north, east = area_box(area)
    if not (south <= place.latitude <= north and west <= place.longitude <= east):
        return False
    if area.bounds is not None:  # a geocoded place is its box
        return True
    return distance_m(area.latitude, area.longitude, place.latitude, place.longitude) <= area.radius_m


def select(places: Iterable[Place], *, categories: set[str], area: Area, min_confidence: float) -> Places:
    """The places a campaign may list, nearest first; what was left out counted as ``closed``/``outside_area``."""
    from prospectpro.places.locations import distance_m

    kept: list[tuple[float, str, Place]] = []
    skipped = {"closed": 0, "outside_area": 0}
    low_confidence = 0  # not one of the shared ``skipped`` keys: kept on the answer
    for place in places:
        if not categories.intersection(place.categories):
            continue
        if not in_area(place, area):
            skipped["outside_area"] += 1
        elif (place.operating_status or OPEN) != OPEN:
            skipped["closed"] += 1
        elif place.confidence is None or place.confidence < min_confidence:
            low_confidence += 1
        else:
            kept.append((distance_m(area.latitude, area.longitude, place.latitude, place.longitude), place.id, place))
    kept.sort(key=lambda item: item[:2])
    fetched = utcnow().isoformat()
    result = Places((to_business(p, fetched) for *_, p in kept), skipped)
    result.licences = {p.id: p.licence for *_, p in kept}
    result.low_confidence = low_confidence
    return result


# -- the local cache (the places index of Overture) -----------------------------------------


def cache_dir(settings: Settings, release: str) -> Path:
    return settings.data_dir / "overture" / re.sub(r"[^\w.-]+", "_", release)


def _area_of_box(box: Box, label: str) -> Area:
    south, west, north, east = box
    from prospectpro.places.locations import distance_m

    lat, lon = (south + north) / 2, (west + east) / 2
    radius = max(distance_m(lat, lon, south, west), distance_m(lat, lon, north, east), 1.0)
    return Area(latitude=lat, longitude=lon, radius_m=radius, label=label, country=None, bounds=box)


@dataclass(frozen=True)
class ImportResult:
    places: int
    bytes_written: int
    path: Path
    stats: ReadStats


def import_box(db: Database, settings: Settings, box: Box, *, label: str | None = None) -> ImportResult:
    """Every place of the release in the box into the local cache, with a coverage record."""
    location = locate(settings)
    stats = ReadStats()
    table = read_box(open_dataset(location), box, columns=None, stats=stats)
    return _store_cache(db, settings, location.release, box, table, stats, label or _box_label(box))


def _box_label(box: Box) -> str:
    return "bbox " + ",".join(f"{v:g}" for v in (box[1], box[0], box[3], box[2]))


def _store_cache(
    db: Database, settings: Settings, release: str, box: Box, table: pa.Table, stats: ReadStats, label: str
) -> ImportResult:
    folder = cache_dir(settings, release)
    folder.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(repr(box).encode()).hexdigest()[:16]
    target = folder / f"box-{name}.parquet"
    partial = target.with_suffix(".partial")
    pq.write_table(table, partial)
    partial.replace(target)  # a reader never sees half a file
    area = _area_of_box(box, label)
    record_coverage(db, source=NAME, tags=[release], area=area, elements=table.num_rows)
    return ImportResult(table.num_rows, target.stat().st_size, target, stats)


def _cached_table(settings: Settings, release: str, box: Box) -> pa.Table:
    folder = cache_dir(settings, release)
    files = sorted(str(p) for p in folder.glob("box-*.parquet"))
    dataset = ds.dataset(files, format="parquet")
    table = read_box(dataset, box, columns=None)
    # Overlapping imported boxes hold a place twice: once is enough.
    if table.num_rows:
        ids = table.column("id").to_pylist()
        first = {ident: i for i, ident in reversed(list(enumerate(ids)))}
        table = table.take(sorted(first.values()))
    return table


class OverturePlacesSource:
    name = NAME

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    def discover(self, query: DiscoveryQuery, ctx: CallContext) -> Places:
        if locate(self.settings).remote and served_locally(self.db, query.area):
            return Places()  # local first: an area of the bundled/imported extract never asks a remote release
        table = self.table_for(query.area)
        categories = categories_for(query.type_name, query.tags)
        return select(places_of(table), categories=categories, area=query.area,
                      min_confidence=self.settings.overture_min_confidence)  # fmt: skip

    def table_for(self, area: Area) -> pa.Table:
        """The records of the area's box: from the local cache when it covers the area, else the release."""
        location = locate(self.settings)
        box = area_box(area)
        if covering(self.db, source=NAME, tags=[location.release], area=area, max_age_days=_RELEASE_COVERAGE_DAYS):
            return _cached_table(self.settings, location.release, box)
        stats = ReadStats()
        try:
            table = read_box(open_dataset(location), box, columns=None, stats=stats)
        except ProviderError:
            raise
        except (OSError, pa.ArrowException) as exc:
            raise _failure(location, exc) from None
        if location.remote:  # a later campaign for this area and release reads it locally
            _store_cache(self.db, self.settings, location.release, box, table, stats, area.label)
        return table


def _failure(location: Location, exc: BaseException) -> ProviderError:
    text = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    kind = ProviderErrorKind.timeout if "timeout" in text.lower() else ProviderErrorKind.unavailable
    return ProviderError(NAME, kind, f"cannot read {location.label}: {text}")
