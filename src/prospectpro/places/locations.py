"""What a campaign's "location" text means: a circle on the map.

Either explicit coordinates ("60.17,24.94[,radius_m]") or a locality from the
imported OSM data ("Kluuvi, Helsinki, Finland"), matched in any of its
spellings, ignoring case and accents.
"""

from __future__ import annotations

import difflib
import math
import re
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pycountry
from sqlalchemy import and_, func, or_, select

from prospectpro.config import Settings
from prospectpro.domain.area import Area
from prospectpro.domain.normalize import text_key
from prospectpro.errors import InvalidInput
from prospectpro.store.db import Database
from prospectpro.store.schema import datasets, localities, place_categories, places

# Kinds of OSM place a user can name, largest first (the order breaks ties
# between equally good matches), with the search radius each one implies.
LOCALITY_KINDS: dict[str, float] = {
    "city": 15000,
    "town": 6000,
    "borough": 4000,
    "village": 2500,
    "suburb": 1500,
    "quarter": 900,
    "neighbourhood": 700,
    "hamlet": 500,
    "locality": 500,
    "isolated_dwelling": 500,
    "island": 500,
}
_KIND_RANK = {kind: rank for rank, kind in enumerate(LOCALITY_KINDS)}

MAX_TEXT = 200
DEFAULT_RADIUS_M = 1000.0
MIN_RADIUS_M = 1.0
MAX_RADIUS_M = 50_000.0
EARTH_RADIUS_M = 6_371_008.8
# On the sphere distance_m uses; bounding boxes divide by it with a margin,
# so that a box never cuts off a point the exact distance test would keep.
METERS_PER_DEGREE = math.pi * EARTH_RADIUS_M / 180

# A plain decimal: "nan", "inf" and "1e5" are not coordinates ("Nan" is a town).
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")
_IMPORT_HINT = (
    "Import an extract with `prospectpro places import FILE.osm.pbf` (regions and countries from "
    "https://download.geofabrik.de, which lists each file's size; the bundled 0.7 MB extract imports in "
    "about 0.2 s; the time grows with the file's size), or give lat,lon[,radius_m]."
)


@dataclass(frozen=True, slots=True)
class _Locality:
    name: str
    names: tuple[str, ...]
    keys: frozenset[str]
    kind: str
    latitude: float
    longitude: float
    radius_m: float
    country: str | None
    order: tuple[str, int]  # (osm_type, osm_id): a stable last tie-break


class NeedsGeocoding(InvalidInput):
    """Neither the local places data nor the geocode cache knows this name: Nominatim must be asked
    (``providers.nominatim.ensure_geocoded``, before the submission is written). Unasked, it is the
    local data's own "unknown location" refusal."""


def resolve_location(db: Database, text: str, *, settings: Settings | None = None) -> Area:
    """Turn a campaign's location text into an Area, or say precisely what is wrong with it.

    From the local places index first; with ``settings`` (live OpenStreetMap), a name it does not
    know from the geocode cache, and coordinates outside every imported extract within the area limit.
    No network: a name nobody has looked up yet raises ``NeedsGeocoding``.
    """
    text = (text or "").strip()
    if not text:
        raise InvalidInput("location is empty: give a place name or lat,lon[,radius_m]")
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"location is too long ({len(text)} characters, at most {MAX_TEXT})")
    parts = [p.strip() for p in text.split(",")]
    if _NUMBER.match(parts[0]):
        area = _coordinates(parts)
        if settings is not None:
            _check_live_radius(db, area, settings)
        return area
    if not all(parts):
        raise InvalidInput(f"location {text!r} has an empty part between commas")
    try:
        return _named(_load(db), parts)
    except InvalidInput as local_miss:
        if settings is None or not settings.nominatim_base_url.strip():
            raise
        return _geocoded(db, text, settings, local_miss)


def _geocoded(db: Database, text: str, settings: Settings, local_miss: InvalidInput) -> Area:
    from prospectpro.places.coverage import cached_geocode
    from prospectpro.providers.nominatim import choose

    candidates = cached_geocode(db, text, max_age_days=None)  # the edge asked just now if it was stale
    if candidates is None:
        raise NeedsGeocoding(local_miss.message, details=local_miss.details)
    return choose(text, candidates, settings)


def _check_live_radius(db: Database, area: Area, settings: Settings) -> None:
    """A circle the live sources would search must stay within the area limit (the local data has none)."""
    from prospectpro.places.coverage import inside_extract

    km2 = math.pi * (area.radius_m / 1000) ** 2
    if km2 > settings.max_area_km2 and not inside_extract(db, area.latitude, area.longitude):
        from prospectpro.providers.nominatim import AreaTooLarge

        limit = math.sqrt(settings.max_area_km2 / math.pi) * 1000
        raise AreaTooLarge(
            f"a radius of {area.radius_m:,.0f} m covers about {km2:,.0f} km², more than the "
            f"{settings.max_area_km2:,.0f} km² a campaign may search: use at most {limit:,.0f} m, or name a "
            "city or a district",
            details={"area_km2": round(km2), "max_area_km2": settings.max_area_km2},
        )


def known_localities(db: Database) -> list[str]:
    """Names of the imported localities, largest kind first, each name once."""
    found = sorted(_load(db), key=lambda lo: (_KIND_RANK.get(lo.kind, len(_KIND_RANK)), lo.name))
    return list(dict.fromkeys(lo.name for lo in found))


@dataclass(frozen=True)
class ImportedData:
    """What the discovery data holds (``doctor`` reports it)."""

    places: int
    localities: int
    datasets: list[str]


def imported_data(db: Database) -> ImportedData:
    with db.read() as conn:
        return ImportedData(
            places=conn.execute(select(func.count()).select_from(places)).scalar_one(),
            localities=conn.execute(select(func.count()).select_from(localities)).scalar_one(),
            datasets=list(conn.execute(select(datasets.c.name)).scalars()),
        )


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@lru_cache(maxsize=4096)
def country_code(value: str | None) -> str | None:
    """ISO 3166-1 alpha-2 for a code or English country name ("fi", "FIN", "Finland"), else None."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        return str(pycountry.countries.lookup(value).alpha_2)
    except LookupError:
        return None


# --- coordinates -------------------------------------------------------------


def _coordinates(parts: list[str]) -> Area:
    if len(parts) not in (2, 3) or not all(_NUMBER.match(p) for p in parts):
        raise InvalidInput(
            f"coordinates must be lat,lon or lat,lon,radius_m as decimal numbers, got {','.join(parts)!r}"
        )
    lat, lon = float(parts[0]), float(parts[1])
    radius = float(parts[2]) if len(parts) == 3 else DEFAULT_RADIUS_M
    if not -90 <= lat <= 90:
        raise InvalidInput(f"latitude {parts[0]} is out of range (-90..90)")
    if not -180 <= lon <= 180:
        raise InvalidInput(f"longitude {parts[1]} is out of range (-180..180)")
    if not MIN_RADIUS_M <= radius <= MAX_RADIUS_M:
        raise InvalidInput(
            f"radius {parts[2]} m is out of range ({MIN_RADIUS_M:g}..{MAX_RADIUS_M:,.0f} m)"
        )
    label = f"{lat:.4f}, {lon:.4f} (r={radius:g} m)"
    return Area(latitude=lat, longitude=lon, radius_m=radius, label=label, country=None)


MAX_LABEL = 300  # campaigns.location

# --- names -------------------------------------------------------------------


# Parsed localities per database, with the datasets version they were read at
# and when that version was last checked: resolving a location is on the
# submit path, so it must neither re-read and re-normalize every place name
# each time nor read the version more than once per VERSION_CHECK_SECONDS.
# An import in this process forgets the cache at once (``forget_localities``);
# one in another process is seen within VERSION_CHECK_SECONDS.
VERSION_CHECK_SECONDS = 1.0
_CACHE: dict[str, tuple[float, tuple[object, ...], list[_Locality]]] = {}
_CACHE_LOCK = threading.Lock()


def forget_localities(db: Database) -> None:
    with _CACHE_LOCK:
        _CACHE.pop(db.url, None)


def _load(db: Database) -> list[_Locality]:
    cached = _CACHE.get(db.url)
    if cached is not None and time.monotonic() - cached[0] < VERSION_CHECK_SECONDS:
        return cached[2]
    cols = localities.c
    query = select(
        cols.name, cols.names, cols.kind, cols.latitude, cols.longitude,
        cols.radius_m, cols.country, cols.osm_type, cols.osm_id,
    )  # fmt: skip
    checked_at = time.monotonic()
    with db.read() as conn:
        version = tuple(conn.execute(select(func.count(), func.max(datasets.c.imported_at))).one())
        if cached is not None and cached[1] == version:
            with _CACHE_LOCK:
                _CACHE[db.url] = (checked_at, version, cached[2])
            return cached[2]
        rows = conn.execute(query).all()
    found = []
    for row in rows:
        names = tuple(dict.fromkeys([row.name, *(row.names or [])]))
        found.append(
            _Locality(
                name=row.name,
                names=names,
                keys=frozenset(k for k in map(text_key, names) if k),
                kind=row.kind,
                latitude=row.latitude,
                longitude=row.longitude,
                radius_m=row.radius_m,
                country=row.country,
                order=(row.osm_type, row.osm_id),
            )
        )
    with _CACHE_LOCK:
        _CACHE[db.url] = (checked_at, version, found)
    return found


def _named(known: list[_Locality], parts: list[str]) -> Area:
    head, qualifiers = parts[0], parts[1:]
    candidates = _matching(known, head)
    if not candidates:
        suggestions = _suggest(known, head)
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        if not suggestions and known:  # nothing spelled alike: the known names that come closest all the same
            hint = f" The known places closest to that name: {', '.join(_suggest(known, head, cutoff=0.0))}."
        raise InvalidInput(
            f"unknown location {head!r}: not in the imported places data.{hint} {_IMPORT_HINT}",
            details={"suggestions": suggestions},
        )
    for qualifier in qualifiers:
        candidates = _qualified(known, candidates, head, qualifier, parts)
    best = min(candidates, key=lambda c: _rank(c, head))
    labels = [_qualifier_label(best, _matching(known, q), country_code(q)) for q in qualifiers]
    # A qualifier repeated ("Kluuvi, fi, fi, …") names the same place once; the
    # label is what a campaign stores and shows, so it stays within MAX_LABEL.
    label = ", ".join(dict.fromkeys([best.name, *(lab for lab in labels if lab)]))[:MAX_LABEL]
    return Area(
        latitude=best.latitude,
        longitude=best.longitude,
        radius_m=best.radius_m,
        label=label,
        country=best.country,
    )


def _qualified(
    known: list[_Locality], candidates: list[_Locality], head: str, qualifier: str, parts: list[str]
) -> list[_Locality]:
    """The candidates inside the qualifier (a containing locality or the country)."""
    containers = _matching(known, qualifier)
    country = country_code(qualifier)
    if not containers and country is None:
        suggestions = _suggest(known, qualifier)
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        raise InvalidInput(
            f"unknown location {qualifier!r} in {', '.join(parts)!r}: neither a country nor "
            f"in the imported places data.{hint}",
            details={"qualifier": qualifier, "suggestions": suggestions},
        )
    kept = [c for c in candidates if _within(c, containers, country)]
    if not kept:
        where = "; ".join(_describe(c) for c in candidates[:3])
        raise InvalidInput(
            f"no {head!r} in {qualifier!r}: the imported {head!r} ({where}) is not inside {qualifier!r}",
            details={"qualifier": qualifier, "suggestions": []},
        )
    return kept


def _matching(known: list[_Locality], name: str) -> list[_Locality]:
    key = text_key(name)
    return [lo for lo in known if key and key in lo.keys]


def _within(candidate: _Locality, containers: list[_Locality], country: str | None) -> bool:
    if country is not None and candidate.country == country:
        return True
    return any(_contains(outer, candidate) for outer in containers)


def _contains(outer: _Locality, inner: _Locality) -> bool:
    # Centres are close both ways round; only the larger place contains the
    # smaller ("Kluuvi, Helsinki", not "Helsinki, Kluuvi").
    if outer.radius_m < inner.radius_m:
        return False
    return distance_m(outer.latitude, outer.longitude, inner.latitude, inner.longitude) <= outer.radius_m


def _rank(candidate: _Locality, typed: str) -> tuple[int, int, tuple[str, int]]:
    # Larger kinds first: "Helsinki" means the city, not a neighbourhood named after it.
    # Then the one whose main name is what was typed, over one with it as an alias.
    exact = 0 if text_key(candidate.name) == text_key(typed) else 1
    return _KIND_RANK.get(candidate.kind, len(_KIND_RANK)), exact, candidate.order


def _qualifier_label(best: _Locality, containers: list[_Locality], country: str | None) -> str | None:
    inside = [c for c in containers if _contains(c, best)]
    if inside:
        return min(inside, key=lambda c: c.radius_m).name
    if country is not None:
        entry = pycountry.countries.get(alpha_2=country)
        return str(entry.name) if entry else country
    return None


def _describe(lo: _Locality) -> str:
    country = lo.country or "country unknown"
    return f"{lo.kind} at {lo.latitude:.4f},{lo.longitude:.4f}, {country}"


def _suggest(known: list[_Locality], name: str, limit: int = 5, cutoff: float = 0.7) -> list[str]:
    """Known localities with a spelling close to name, by their main name."""
    owner: dict[str, str] = {}
    for lo in sorted(known, key=lambda lo: _KIND_RANK.get(lo.kind, len(_KIND_RANK))):
        for key in lo.keys:
            owner.setdefault(key, lo.name)
    # More matches than shown: several spellings often belong to one place.
    close = difflib.get_close_matches(text_key(name), list(owner), n=limit * 4, cutoff=cutoff)
    return list(dict.fromkeys(owner[k] for k in close))[:limit]


# The places index, read by the OSM discovery source.
_METERS_PER_DEG_BOX = METERS_PER_DEGREE * 0.99  # a slightly larger box: the exact test is the caller's


def tagged_places_near(db: Database, wanted: list[str], area: Area) -> list[Any]:
    """Places rows with any of the tags in a box around the area (cheap for the lat/lon index;
    the caller tests the circle itself)."""
    tagged = select(place_categories.c.place_id).where(place_categories.c.tag.in_(wanted))
    query = select(
        places.c.osm_type, places.c.osm_id, places.c.name, places.c.tags,
        places.c.latitude, places.c.longitude,
    ).where(places.c.id.in_(tagged), _bbox(area))  # fmt: skip
    with db.read() as conn:
        return list(conn.execute(query))


def _bbox(area: Area) -> Any:
    """A box around the circle, cheap for the lat/lon index; the exact test is done after."""
    dlat = area.radius_m / _METERS_PER_DEG_BOX
    lat_lo, lat_hi = area.latitude - dlat, area.latitude + dlat
    cos_lat = math.cos(math.radians(max(abs(lat_lo), abs(lat_hi))))
    if lat_lo <= -90 or lat_hi >= 90 or cos_lat < 1e-6:
        return places.c.latitude.between(lat_lo, lat_hi)  # the circle covers a pole
    dlon = area.radius_m / (_METERS_PER_DEG_BOX * cos_lat)
    lon_lo, lon_hi = area.longitude - dlon, area.longitude + dlon
    if dlon >= 180:
        lon_test: Any = places.c.longitude.between(-180, 180)
    elif lon_lo < -180:  # crosses the antimeridian
        lon_test = or_(places.c.longitude >= lon_lo + 360, places.c.longitude <= lon_hi)
    elif lon_hi > 180:
        lon_test = or_(places.c.longitude >= lon_lo, places.c.longitude <= lon_hi - 360)
    else:
        lon_test = places.c.longitude.between(lon_lo, lon_hi)
    return and_(places.c.latitude.between(lat_lo, lat_hi), lon_test)
