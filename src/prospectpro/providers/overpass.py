"""Overpass: every OSM object of a business type in an area, for the live ``osm`` source.

One query per (type, area): ``nwr[k=v](area)`` for each of the type's tags,
``out center tags`` (ways and relations come with their centre). The area is
the place's boundary when Nominatim named an OSM relation (``area(id:…)``),
else its box. The server is told the time and memory it may use
(``[timeout:…][maxsize:…]``).

Answers and their failures, as the Overpass docs describe them
(docs/external-apis.md §4): a timeout or memory error arrives as HTTP 200
with a ``remark``; 429 means this address's slots are in use (``/api/status``
says when one is free: we wait that long, bounded, and try again); 504 means
the server is overloaded (the gate retries with backoff); 400 is a query it
refused (an HTML body). All of them end as ``ProviderError``.

The public instance is shared by everyone: one query at a time per
installation (a lease in the store) and ``settings.overpass_daily_limit``
queries a day; neither applies to an instance of your own.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from prospectpro.config import Settings
from prospectpro.domain.area import Area
from prospectpro.domain.business_types import OSM_BUSINESS_KEYS
from prospectpro.gate.errors import ProviderError, ProviderErrorKind
from prospectpro.gate.types import ProviderSpec, Verdict
from prospectpro.places import coverage
from prospectpro.store.db import Database

log = logging.getLogger(__name__)

NAME = "overpass"
QUERY_TIMEOUT_S = 90  # [timeout:…]: the server stops the query after this
QUERY_MAXSIZE = 256 * 1024 * 1024  # [maxsize:…]: bytes of server memory the query may use
MAX_ANSWER_BYTES = 128 * 1024 * 1024
# Hosts of the public instances (https://wiki.openstreetmap.org/wiki/Overpass_API#Public_Overpass_API_instances).
PUBLIC_HOSTS = frozenset(
    {
        "overpass-api.de", "lz4.overpass-api.de", "z.overpass-api.de", "overpass.private.coffee",
        "overpass.kumi.systems", "maps.mail.ru", "overpass.openstreetmap.ru", "overpass.osm.jp",
    }
)  # fmt: skip
LEASE_NAME = "overpass:public"
LEASE_SECONDS = QUERY_TIMEOUT_S + 60  # outlives one query; a holder that died frees it by then
LEASE_WAIT_S = 120.0  # how long a query waits for the installation's one slot
SLOT_WAIT_MAX_S = 60.0  # the longest /api/status wait honoured after a 429
BUSY_RETRIES = 2  # 429s waited out before giving up
_POLL_S = 0.25
BACKOFF_BASE_S = 2.0  # 504s and 5xx: the gate retries after 2 s, 4 s (with jitter)

_TAG = re.compile(r"^([A-Za-z0-9_:]+)=([A-Za-z0-9_:;.\- ]+)$")


def spec(settings: Settings) -> ProviderSpec | None:
    """None when live OSM is off (an empty PROSPECTPRO_OVERPASS_BASE_URL)."""
    base = settings.overpass_base_url.strip().rstrip("/")
    if not base:
        return None
    return ProviderSpec(
        name=NAME,
        base_url=base,
        concurrency=1,
        connect_timeout=10.0,
        read_timeout=QUERY_TIMEOUT_S + 15.0,
        total_timeout=QUERY_TIMEOUT_S + 30.0,
        max_response_bytes=MAX_ANSWER_BYTES,
        max_attempts=3,
        backoff_base=BACKOFF_BASE_S,
        backoff_max=30.0,
        breaker_failures=5,
        breaker_seconds=120.0,
        classify=classify,
    )


def is_public(base_url: str) -> bool:
    return (urlsplit(base_url).hostname or "").lower() in PUBLIC_HOSTS


def classify(response: httpx.Response) -> Verdict:
    """429 is not retried here: ``fetch`` asks /api/status how long to wait first."""
    code = response.status_code
    if 200 <= code < 300:
        return Verdict.success()
    if code == 429:
        return Verdict(
            kind=ProviderErrorKind.rate_limited, message="HTTP 429: all of this address's query slots are in use"
        )
    if code in (502, 503, 504):
        return Verdict(retry=True, kind=ProviderErrorKind.unavailable, message=f"HTTP {code}: the server is overloaded")
    if code >= 500:
        return Verdict(retry=True, kind=ProviderErrorKind.unavailable, message=f"HTTP {code}")
    if code == 400:
        return Verdict(
            kind=ProviderErrorKind.bad_request, message=f"HTTP 400: the query was refused: {_html_error(response)}"
        )
    return Verdict(kind=ProviderErrorKind.bad_request, message=f"HTTP {code}")


def _html_error(response: httpx.Response) -> str:
    text = re.sub(r"<[^>]+>", " ", response.text[:2000])
    found = re.search(r"Error\s*:?\s*(.{1,200})", text)
    return " ".join((found.group(1) if found else text).split())[:200] or "no reason given"


# -- the query ----------------------------------------------------------------------


def build_query(
    tags: Sequence[str], area: Area, *, timeout: int = QUERY_TIMEOUT_S, maxsize: int = QUERY_MAXSIZE
) -> str:
    """Overpass QL for every object with any of ``tags`` in the area, with centres and tags."""
    filters = []
    for tag in dict.fromkeys(t.strip() for t in tags if t and t.strip()):
        match = _TAG.match(tag)
        if match is None:
            raise ValueError(f"not an OSM tag: {tag!r}")
        filters.append(f'["{match.group(1)}"="{match.group(2)}"]')
    if not filters:
        raise ValueError("no tags to ask for")
    head = f"[out:json][timeout:{int(timeout)}][maxsize:{int(maxsize)}];"
    area_id = _area_id(area.osm_ref)
    if area_id is not None:
        spatial, prelude = "(area.a)", f"area(id:{area_id})->.a;"
    else:
        south, west, north, east = coverage.area_box(area)
        spatial, prelude = f"({south:.7f},{west:.7f},{north:.7f},{east:.7f})", ""
    body = "".join(f"nwr{f}{spatial};" for f in filters)
    return f"{head}{prelude}({body});out center tags;"


def _area_id(osm_ref: str | None) -> int | None:
    """Overpass's id of the area a relation (or closed way) bounds: 3600000000 + id (2400000000 + id)."""
    kind, _, number = (osm_ref or "").partition("/")
    if not number.isdigit():
        return None
    if kind == "relation":
        return 3_600_000_000 + int(number)
    return None  # a way's area exists only for some ways; the box is safe


# -- the answer ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Element:
    osm_type: str  # n | w | r
    osm_id: int
    latitude: float
    longitude: float
    tags: dict[str, str]


_TYPES = {"node": "n", "way": "w", "relation": "r"}
_READ_KEYS = ("name", *OSM_BUSINESS_KEYS)
_REMARK_TIMEOUT = ("timed out", "timeout")


def parse(body: bytes) -> tuple[list[Element], dict[str, Any]]:
    """The named, located elements of an answer, and its metadata (osm3s); ProviderError when it is not one."""
    try:
        data = json.loads(body)
    except ValueError:
        raise ProviderError(NAME, ProviderErrorKind.malformed, "the answer is not JSON") from None
    if not isinstance(data, dict):
        raise ProviderError(NAME, ProviderErrorKind.malformed, "the answer is not a JSON object")
    remark = data.get("remark")
    if isinstance(remark, str) and remark.strip():
        # A runtime error after HTTP 200: the elements (if any) are an incomplete list.
        lowered = remark.lower()
        kind = (
            ProviderErrorKind.timeout if any(w in lowered for w in _REMARK_TIMEOUT) else ProviderErrorKind.unavailable
        )
        raise ProviderError(NAME, kind, f"the server stopped the query: {remark.strip()[:300]}")
    elements = data.get("elements")
    if not isinstance(elements, list):
        raise ProviderError(NAME, ProviderErrorKind.malformed, "the answer has no list of elements")
    return list(_elements(elements)), {"osm3s": data.get("osm3s") or {}, "generator": data.get("generator")}


def _elements(raw: list[Any]) -> Iterator[Element]:
    for item in raw:
        if not isinstance(item, dict):
            continue
        kind = _TYPES.get(item.get("type"))  # type: ignore[arg-type]
        tags = item.get("tags")
        if kind is None or not isinstance(tags, dict) or not str(tags.get("name") or "").strip():
            continue  # an area, a node of a way, or an unnamed object: no business to list
        where = item if kind == "n" else item.get("center")
        try:
            lat, lon = float(where["lat"]), float(where["lon"])  # type: ignore[index]
            osm_id = int(item["id"])
        except (KeyError, TypeError, ValueError):
            continue
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            continue
        if any(type(tags.get(k, "")) is not str for k in _READ_KEYS):  # OSM values are text; the index reads these
            tags = {k: str(v) for k, v in tags.items()}
        yield Element(kind, osm_id, lat, lon, tags)


def slot_wait(status_text: str) -> float | None:
    """Seconds until a query slot is free, from /api/status: 0 when one is free now, None when unreadable."""
    if re.search(r"\b\d+ slots? available now", status_text):
        return 0.0
    waits = [float(s) for s in re.findall(r"Slot available after: \S+, in (-?\d+) seconds", status_text)]
    return max(0.0, min(waits)) if waits else None


# -- fetching ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fetched:
    elements: list[Element]
    meta: dict[str, Any]
    query: str


def _holder() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def fetch(
    db: Database,
    settings: Settings,
    request: Callable[..., httpx.Response],
    tags: Sequence[str],
    area: Area,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Fetched:
    """Ask Overpass (``request``: the gate's client's ``request``) for the tags in the area."""
    query = build_query(tags, area)
    public = is_public(settings.overpass_base_url)
    holder = _holder()
    if public:
        _wait_for_lease(db, holder, sleep)
    try:
        if public and coverage.count_call(db, NAME, settings.overpass_daily_limit) is None:
            raise ProviderError(
                NAME,
                ProviderErrorKind.quota_exhausted,
                f"the daily limit of {settings.overpass_daily_limit} queries to the public Overpass instance is "
                "used up (PROSPECTPRO_OVERPASS_DAILY_LIMIT); it resets at midnight UTC, or run your own instance",
            )
        body = _post(request, query, sleep)
    finally:
        if public:
            coverage.release_lease(db, LEASE_NAME, holder)
    elements, meta = parse(body)
    return Fetched(elements=elements, meta=meta, query=query)


def _wait_for_lease(db: Database, holder: str, sleep: Callable[[float], None]) -> None:
    deadline = time.monotonic() + LEASE_WAIT_S
    while not coverage.take_lease(db, LEASE_NAME, holder, LEASE_SECONDS):
        if time.monotonic() >= deadline:
            raise ProviderError(
                NAME,
                ProviderErrorKind.rate_limited,
                "another Overpass query of this installation is still running",
                retry_after=30.0,
            )
        sleep(_POLL_S)


def _post(request: Callable[..., httpx.Response], query: str, sleep: Callable[[float], None]) -> bytes:
    for attempt in range(BUSY_RETRIES + 1):
        try:
            # GET ?data= (the docs' other form): the query is short, and the transport takes params.
            return request("GET", "/api/interpreter", params={"data": query}).content
        except ProviderError as exc:
            if exc.kind != ProviderErrorKind.rate_limited or attempt == BUSY_RETRIES:
                raise
            wait = _status_wait(request)
            if wait is None or wait > SLOT_WAIT_MAX_S:
                raise ProviderError(
                    NAME,
                    ProviderErrorKind.rate_limited,
                    f"{exc.message}; no query slot free soon (/api/status)",
                    retry_after=wait,
                ) from None
            log.info("overpass: 429, /api/status says a slot is free in %.0f s", wait)
            sleep(wait + 0.1)
    raise AssertionError("unreachable")  # pragma: no cover


def _status_wait(request: Callable[..., httpx.Response]) -> float | None:
    try:
        return slot_wait(request("GET", "/api/status").text)
    except ProviderError:
        return None
