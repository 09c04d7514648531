"""What live OpenStreetMap put into the store, and the store-held limits it runs under.

* Coverage records: which (tags, area) a live Overpass query fetched into the
  places index, and when. A fresh one whose tags include a campaign's and
  whose area holds the campaign's serves it from the index, with no call.
  Coverage is per (tags, area): stored dentists of Austin do not make Austin
  covered for cafés.
* The geocode cache: Nominatim's candidates per location text.
* The bounds of imported extracts: a point inside one is served locally.
* The public Overpass instance's lease (one query at a time per
  installation) and its daily count, both in the store, so they hold across
  processes.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update

from prospectpro.domain.area import Area
from prospectpro.domain.clock import utcnow
from prospectpro.domain.normalize import text_key
from prospectpro.store.db import Database
from prospectpro.store.schema import datasets, geocode_cache, place_coverage, provider_leases, provider_usage
from prospectpro.store.upsert import lock_or_insert_statement

Box = tuple[float, float, float, float]  # south, west, north, east

_M_PER_DEG = math.pi * 6_371_008.8 / 180


def tags_key(tags: Iterable[str]) -> str:
    return ",".join(sorted({t.strip() for t in tags if t and t.strip()}))


def area_box(area: Area) -> Box:
    """The area's own box when it has one (a geocoded place), else the box around its circle."""
    if area.bounds is not None:
        return area.bounds
    dlat = area.radius_m / _M_PER_DEG
    dlon = dlat / max(math.cos(math.radians(area.latitude)), 0.01)
    return (
        max(-90.0, area.latitude - dlat),
        max(-180.0, area.longitude - dlon),
        min(90.0, area.latitude + dlat),
        min(180.0, area.longitude + dlon),
    )


def _holds(outer: Box, inner: Box, margin: float = 1e-7) -> bool:
    return (
        outer[0] - margin <= inner[0]
        and outer[1] - margin <= inner[1]
        and inner[2] <= outer[2] + margin
        and inner[3] <= outer[3] + margin
    )


# -- coverage ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Coverage:
    id: int
    source: str
    tags: tuple[str, ...]
    area_ref: str | None
    box: Box
    label: str
    elements: int
    fetched_at: datetime


def record_coverage(
    db: Database,
    *,
    source: str,
    tags: Sequence[str],
    area: Area,
    elements: int,
    now: datetime | None = None,
) -> Coverage:
    """One more coverage record; the older ones of the same (source, tags, area) go."""
    now = now or utcnow()
    key, box = tags_key(tags), area_box(area)
    row = {
        "source": source,
        "tags_key": key,
        "area_ref": area.osm_ref,
        "south": box[0],
        "west": box[1],
        "north": box[2],
        "east": box[3],
        "label": area.label[:300],
        "elements": elements,
        "fetched_at": now,
    }
    cols = place_coverage.c
    with db.write() as conn:
        same = select(cols.id, cols.area_ref, cols.south, cols.west, cols.north, cols.east).where(
            cols.source == source, cols.tags_key == key
        )
        stale = [
            r.id for r in conn.execute(same) if r.area_ref == area.osm_ref and (r.south, r.west, r.north, r.east) == box
        ]
        if stale:
            conn.execute(delete(place_coverage).where(cols.id.in_(stale)))
        new_id = conn.execute(insert(place_coverage).values(**row).returning(cols.id)).scalar_one()
    return Coverage(new_id, source, tuple(key.split(",")), area.osm_ref, box, area.label[:300], elements, now)


def covering(
    db: Database, *, source: str, tags: Sequence[str], area: Area, max_age_days: float, now: datetime | None = None
) -> Coverage | None:
    """The freshest record of ``source`` whose tags include these and whose area holds this one, else None.

    A record made by a boundary query holds only that same place (its box is
    larger than the boundary); one made by a box holds every area inside the box.
    """
    if max_age_days <= 0:
        return None
    wanted = set(tags_key(tags).split(","))
    since = (now or utcnow()) - timedelta(days=max_age_days)
    box = area_box(area)
    cols = place_coverage.c
    query = (
        select(place_coverage)
        .where(cols.source == source, cols.fetched_at >= since)
        .order_by(cols.fetched_at.desc(), cols.id.desc())
    )
    with db.read() as conn:
        rows = list(conn.execute(query))
    for r in rows:
        if not wanted <= set(r.tags_key.split(",")):
            continue
        outer: Box = (r.south, r.west, r.north, r.east)
        if r.area_ref is not None and r.area_ref != area.osm_ref:
            continue
        if _holds(outer, box):
            return Coverage(r.id, r.source, tuple(r.tags_key.split(",")), r.area_ref, outer, r.label, r.elements,
                            r.fetched_at)  # fmt: skip
    return None


# -- the geocode cache ---------------------------------------------------------------------


def query_hash(text: str) -> str:
    # Blind to case, accents and punctuation: "Austin, TX" and "austin tx" are one question.
    return hashlib.sha256(text_key(text).encode()).hexdigest()


def cached_geocode(db: Database, text: str, *, max_age_days: float | None, now: datetime | None = None) -> Any:
    """The stored answer for ``text`` (a list of candidates), or None; ``max_age_days`` None: any age."""
    query = select(geocode_cache.c.response, geocode_cache.c.fetched_at).where(
        geocode_cache.c.query_hash == query_hash(text)
    )
    with db.read() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    if max_age_days is not None and row.fetched_at < (now or utcnow()) - timedelta(days=max_age_days):
        return None
    return row.response


def store_geocode(db: Database, text: str, response: Any, *, provider: str, now: datetime | None = None) -> None:
    key = query_hash(text)
    values = {"query": text, "provider": provider, "response": response, "fetched_at": now or utcnow()}
    with db.write() as conn:
        done = conn.execute(update(geocode_cache).where(geocode_cache.c.query_hash == key).values(**values))
        if done.rowcount == 0:
            conn.execute(insert(geocode_cache).values(query_hash=key, **values))


# -- imported extracts -----------------------------------------------------------------


def extract_boxes(db: Database) -> list[Box]:
    cols = datasets.c
    with db.read() as conn:
        rows = conn.execute(select(cols.south, cols.west, cols.north, cols.east)).all()
    return [(r.south, r.west, r.north, r.east) for r in rows if None not in (r.south, r.west, r.north, r.east)]


def inside_extract(db: Database, latitude: float, longitude: float) -> bool:
    """Whether the point lies inside the bounds of an imported extract."""
    return any(s <= latitude <= n and w <= longitude <= e for s, w, n, e in extract_boxes(db))


def served_locally(db: Database, area: Area) -> bool:
    """Local first, deterministically: an area with no place of its own (a local locality or
    coordinates) inside an imported extract; a geocoded place only if its whole box is inside one."""
    boxes = extract_boxes(db)
    if area.bounds is None and area.osm_ref is None:
        return any(s <= area.latitude <= n and w <= area.longitude <= e for s, w, n, e in boxes)
    return any(_holds(outer, area_box(area)) for outer in boxes)


# -- the public instance's lease and daily count ----------------------------------------------


def take_lease(db: Database, name: str, holder: str, seconds: float, now: datetime | None = None) -> bool:
    """Hold ``name`` for ``seconds`` unless someone else holds it unexpired; True when taken."""
    now = now or utcnow()
    lock = lock_or_insert_statement(db.engine.dialect.name, provider_leases, ("name",), ("holder", "expires_at"))
    with db.write() as conn:
        row = conn.execute(lock, {"name": name, "holder": holder, "expires_at": now}).one()
        if row.holder != holder and row.expires_at > now:
            return False
        conn.execute(
            update(provider_leases)
            .where(provider_leases.c.name == name)
            .values(holder=holder, expires_at=now + timedelta(seconds=seconds))
        )
    return True


def release_lease(db: Database, name: str, holder: str) -> None:
    with db.write() as conn:
        conn.execute(delete(provider_leases).where(provider_leases.c.name == name, provider_leases.c.holder == holder))


def count_call(db: Database, provider: str, limit: int | None, now: datetime | None = None) -> int | None:
    """Count one call of today (UTC) unless ``limit`` calls were made already: the new count, or None."""
    day = (now or utcnow()).date().isoformat()
    lock = lock_or_insert_statement(db.engine.dialect.name, provider_usage, ("provider", "day"), ("calls",))
    with db.write() as conn:
        calls = conn.execute(lock, {"provider": provider, "day": day, "calls": 0}).one().calls
        if limit is not None and calls >= limit:
            return None
        conn.execute(
            update(provider_usage)
            .where(provider_usage.c.provider == provider, provider_usage.c.day == day)
            .values(calls=calls + 1)
        )
    return int(calls) + 1


def calls_today(db: Database, provider: str, now: datetime | None = None) -> int:
    day = (now or utcnow()).date().isoformat()
    query = select(provider_usage.c.calls).where(provider_usage.c.provider == provider, provider_usage.c.day == day)
    with db.read() as conn:
        return int(conn.execute(query).scalar() or 0)
