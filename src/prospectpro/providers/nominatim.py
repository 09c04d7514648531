"""Geocoding with Nominatim: a place name → the place it names, politely.

Nominatim's usage policy (docs/external-apis.md §4): at most one request per
second summed over the whole installation (the gate counts it in the store:
``shared_per_minute=60, shared_burst=1``), an identifying User-Agent (the
gate sets it), answers cached (``geocode_cache`` for
``settings.geocode_cache_days``), and no autocomplete: it is asked only when
a campaign is submitted with a name the local data does not know.

The answer is read into an ``Area``: the winner among the settlement
candidates, unless the top two lie in different countries or first-level
regions with importances closer than ``settings.ambiguity_importance_gap``
(then the user is asked to say which), and never one larger than
``settings.max_area_km2``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from prospectpro.config import Settings
from prospectpro.domain.area import Area
from prospectpro.errors import InvalidInput, UserError
from prospectpro.gate.errors import ProviderError, ProviderErrorKind
from prospectpro.gate.types import ProviderSpec, Verdict
from prospectpro.providers.protocols import Gate
from prospectpro.store.db import Database

log = logging.getLogger(__name__)

NAME = "nominatim"
SHARED_PER_MINUTE = 50  # installation-wide, in the store (see spec)
RESULTS = 10  # candidates asked for: enough to tell the Springfields apart
MIN_RADIUS_M = 500.0  # a place given as a point still means its surroundings
MAX_RADIUS_M = 50_000.0  # as for coordinates (places.locations)
EARTH_RADIUS_M = 6_371_008.8
_M_PER_DEG = math.pi * EARTH_RADIUS_M / 180

# What a user names as "where": OSM place and boundary objects and the address levels Nominatim gives them.
_SETTLEMENT_CATEGORIES = frozenset({"place", "boundary"})
_SETTLEMENT_TYPES = frozenset(
    {
        "city", "town", "village", "hamlet", "suburb", "borough", "quarter", "neighbourhood", "city_district",
        "district", "municipality", "county", "state_district", "administrative", "locality", "island",
    }
)  # fmt: skip


def spec(settings: Settings) -> ProviderSpec | None:
    """None when live geocoding is off (an empty PROSPECTPRO_NOMINATIM_BASE_URL)."""
    base = settings.nominatim_base_url.strip().rstrip("/")
    if not base:
        return None
    return ProviderSpec(
        name=NAME,
        base_url=base,
        rate_per_second=1.0,
        # 50/min, not 60: the limiter admits a request, which then still has to reach the server (a new
        # connection, a busy machine); measured at Nominatim, admissions 1.0 s apart arrived 0.94 s apart.
        # 1.2 s between admissions keeps every arrival at least 1 s apart.
        shared_per_minute=SHARED_PER_MINUTE,
        shared_burst=1,
        concurrency=1,  # "single-threaded"
        # On the submit path: a short wait, or a clear 503.
        connect_timeout=3.0,
        read_timeout=5.0,
        total_timeout=6.0,
        max_response_bytes=1024 * 1024,
        max_attempts=2,
        backoff_base=1.0,
        backoff_max=2.0,
        breaker_failures=3,
        breaker_seconds=30.0,
        classify=classify,
    )


def classify(response: httpx.Response) -> Verdict:
    """403 is a block (usage policy), 429 the limit: both say stop now, never hammer on."""
    code = response.status_code
    if 200 <= code < 300:
        return Verdict.success()
    if code == 403:
        return Verdict(
            kind=ProviderErrorKind.auth,
            message="HTTP 403: this installation is blocked by Nominatim's "
            "usage policy (set PROSPECTPRO_CONTACT_EMAIL, or run your own Nominatim)",
        )
    if code == 429:
        return Verdict(kind=ProviderErrorKind.rate_limited, retry_after=_retry_after(response), message="HTTP 429")
    if code >= 500:
        return Verdict(retry=True, kind=ProviderErrorKind.unavailable, message=f"HTTP {code}")
    return Verdict(kind=ProviderErrorKind.bad_request, message=f"HTTP {code}")


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


# -- errors a user sees ------------------------------------------------------------


class AmbiguousLocation(InvalidInput):
    code = "ambiguous_location"


class AreaTooLarge(InvalidInput):
    code = "area_too_large"


class GeocoderUnavailable(UserError):
    """Nominatim could not answer (unreachable, blocked, rate limited): the API's 503 with Retry-After."""

    code = "geocoder_unavailable"
    http_status = 503
    exit_code = 2

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, details={"retry_after": retry_after})
        self.retry_after = retry_after


def unavailable(exc: ProviderError) -> GeocoderUnavailable:
    wait = exc.retry_after if exc.retry_after is not None else (60.0 if exc.kind == ProviderErrorKind.auth else 5.0)
    return GeocoderUnavailable(
        f"cannot look the location up: OpenStreetMap's Nominatim did not answer ({exc.reason}); "
        "try again shortly, or give lat,lon[,radius_m]",
        retry_after=max(1, math.ceil(wait)),
    )


# -- asking ------------------------------------------------------------------------


def search(request: Callable[..., httpx.Response], text: str) -> list[dict[str, Any]]:
    """Nominatim's candidates for ``text`` (``request``: the gate's client's ``request``); ProviderError."""
    response = request(
        "GET",
        "/search",
        params={"q": text, "format": "jsonv2", "addressdetails": "1", "limit": str(RESULTS)},
    )
    try:
        body = response.json()
    except ValueError:
        raise ProviderError(NAME, ProviderErrorKind.malformed, "the answer is not JSON") from None
    if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
        raise ProviderError(NAME, ProviderErrorKind.malformed, "the answer is not a list of places")
    return [candidate for candidate in body if _readable(candidate)]


def _readable(candidate: Mapping[str, Any]) -> bool:
    try:
        float(candidate["lat"]), float(candidate["lon"])
    except (KeyError, TypeError, ValueError):
        return False
    return True


# -- reading the answer -------------------------------------------------------------


def choose(text: str, candidates: Sequence[Mapping[str, Any]], settings: Settings) -> Area:
    """The place ``text`` names, as an Area; InvalidInput (unknown, ambiguous, too large) otherwise."""
    if not candidates:
        raise InvalidInput(
            f"unknown location {text!r}: neither the local places data nor OpenStreetMap's Nominatim knows it. "
            'Check the spelling, add the region or country ("Springfield, Illinois"), or give lat,lon[,radius_m].',
            details={"suggestions": []},
        )
    settlements = [c for c in candidates if _settlement(c)]
    if len(settlements) >= 2 and _ambiguous(settlements[0], settlements[1], settings.ambiguity_importance_gap):
        names = list(dict.fromkeys(short_name(c) for c in settlements[:5]))
        raise AmbiguousLocation(
            f"location {text!r} is ambiguous: it may mean {'; '.join(names)}. Say which, e.g. {names[0]!r}.",
            details={"candidates": names},
        )
    best = settlements[0] if settlements else candidates[0]
    return to_area(best, settings)


def _settlement(candidate: Mapping[str, Any]) -> bool:
    category = candidate.get("category") or candidate.get("class")
    kind = candidate.get("addresstype") or candidate.get("type")
    return category in _SETTLEMENT_CATEGORIES or kind in _SETTLEMENT_TYPES


def _importance(candidate: Mapping[str, Any]) -> float:
    try:
        return float(candidate.get("importance") or 0.0)
    except (TypeError, ValueError):
        return 0.0


def _region(candidate: Mapping[str, Any]) -> tuple[str, str]:
    address = candidate.get("address") or {}
    country = str(address.get("country_code") or address.get("country") or "").lower()
    region = str(address.get("ISO3166-2-lvl4") or address.get("state") or address.get("region") or "")
    return country, region


def _ambiguous(first: Mapping[str, Any], second: Mapping[str, Any], gap: float) -> bool:
    return _region(first) != _region(second) and abs(_importance(first) - _importance(second)) < gap


def short_name(candidate: Mapping[str, Any]) -> str:
    """ "Springfield, Illinois, United States": the place, its first-level region, its country."""
    address = candidate.get("address") or {}
    name = candidate.get("name") or str(candidate.get("display_name") or "").split(",")[0]
    region = address.get("state") or address.get("region") or address.get("province")
    parts = [str(p).strip() for p in (name, region, address.get("country")) if p and str(p).strip()]
    return ", ".join(dict.fromkeys(parts)) or str(candidate.get("display_name") or "")


def bounds_of(candidate: Mapping[str, Any]) -> tuple[float, float, float, float] | None:
    """(south, west, north, east) from Nominatim's boundingbox [south, north, west, east] (strings)."""
    box = candidate.get("boundingbox")
    try:
        south, north, west, east = (float(v) for v in box)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    if not (-90 <= south <= north <= 90 and -180 <= west <= 180 and -180 <= east <= 180):
        return None
    return south, west, north, east


def box_area_km2(bounds: tuple[float, float, float, float]) -> float:
    south, west, north, east = bounds
    width = (east - west) % 360 if east < west else east - west  # a box across the antimeridian
    mid = math.radians((south + north) / 2)
    return (north - south) * _M_PER_DEG / 1000 * width * _M_PER_DEG / 1000 * math.cos(mid)


def to_area(candidate: Mapping[str, Any], settings: Settings) -> Area:
    lat, lon = float(candidate["lat"]), float(candidate["lon"])
    label = str(candidate.get("display_name") or short_name(candidate))[:300]
    bounds = bounds_of(candidate)
    if bounds is not None:
        km2 = box_area_km2(bounds)
        if km2 > settings.max_area_km2:
            raise AreaTooLarge(
                f"{short_name(candidate)} covers about {km2:,.0f} km², more than the {settings.max_area_km2:,.0f} km² "
                "a campaign may search: name a city or a district inside it instead",
                details={"area_km2": round(km2), "max_area_km2": settings.max_area_km2},
            )
    else:
        d = MIN_RADIUS_M / _M_PER_DEG
        bounds = (lat - d, lon - d / max(math.cos(math.radians(lat)), 0.01), lat + d,
                  lon + d / max(math.cos(math.radians(lat)), 0.01))  # fmt: skip
    # The circle around the point that holds the whole box: what the places index is read with.
    south, west, north, east = bounds
    corners = ((south, west), (south, east), (north, west), (north, east))
    radius = max(_distance(lat, lon, a, b) for a, b in corners)
    address = candidate.get("address") or {}
    country = str(address.get("country_code") or "").upper() or None
    osm_type, osm_id = candidate.get("osm_type"), candidate.get("osm_id")
    return Area(
        latitude=lat,
        longitude=lon,
        radius_m=min(max(radius, MIN_RADIUS_M), MAX_RADIUS_M),
        label=label,
        country=country if country and len(country) == 2 else None,
        bounds=bounds,
        osm_ref=f"{osm_type}/{osm_id}" if osm_type and osm_id is not None else None,
    )


def _distance(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


# -- the edge's step before a submission is written ------------------------------------------


def ensure_geocoded(db: Database, settings: Settings, gate: Gate | None, text: str) -> Area | None:
    """Look a location name up in Nominatim if the local data and the geocode cache cannot resolve it.

    Called by the API, the web form and the CLI before the submission is handed to the group
    writer, so the writer reads the answer from the cache and no transaction waits on the network.
    Returns the geocoded Area (None when nothing needed asking, or the text is refused anyway:
    the writer says why). Raises the user's errors: ambiguous, too large, unknown, and
    ``GeocoderUnavailable`` when Nominatim cannot answer and no earlier answer is kept.
    """
    from prospectpro.places.coverage import cached_geocode, store_geocode
    from prospectpro.places.locations import NeedsGeocoding, resolve_location

    if spec(settings) is None:
        return None
    try:
        area = resolve_location(db, text, settings=settings)
    except NeedsGeocoding:
        area = None
    except InvalidInput:
        # Refused for what the text is (empty, malformed…) or for a fresh answer (ambiguous, too large): the
        # writer says the same. A stale answer that refused it is asked again: places and their names change.
        if cached_geocode(db, text, max_age_days=None) is None or cached_geocode(
            db, text, max_age_days=settings.geocode_cache_days
        ) is not None:
            return None
        area = None
    if area is not None and area.osm_ref is None and area.bounds is None:
        return None  # local data, or coordinates
    if area is not None and cached_geocode(db, text, max_age_days=settings.geocode_cache_days) is not None:
        return area  # a fresh answer
    client = (gate or default_gate(db, settings)).http(NAME)
    try:
        candidates = search(client.request, text)
    except ProviderError as exc:
        log.warning("geocoding %r failed: %s", text, exc)
        if area is not None:
            return area  # stale, but an answer: better than none while Nominatim is away
        raise unavailable(exc) from None
    store_geocode(db, text, candidates, provider=NAME)
    return choose(text, candidates, settings)


_GATES: dict[str, Gate] = {}
_GATES_LOCK = threading.Lock()


def default_gate(db: Database, settings: Settings) -> Gate:
    """This process's gate for ``db``, for an edge that was not handed one."""
    with _GATES_LOCK:
        gate = _GATES.get(db.url)
        if gate is None:
            from prospectpro.bootstrap import build_gate

            gate = _GATES[db.url] = build_gate(db, settings)
        return gate
