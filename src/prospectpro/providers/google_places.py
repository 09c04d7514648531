"""Google Places API (New): a paid discovery source (Text Search), and Place Details for refreshing leads.

Wire format, errors, SKUs and prices: external-apis.md §1. Every request
goes through the gate: each page of a Text Search is one ledgered call
(``GateRequest("google", "text_search", …)``), so a page already paid for —
by this job before a crash, or by the same owner's campaign a few days ago —
is reused, never bought twice; the budget is reserved before each page.

The field mask is explicit (never ``*``). It asks for phone, website and
rating, so every page is billed as Text Search Enterprise; the price comes
from ``gate/prices.py``. ``addressComponents`` (a Pro field: no higher SKU)
gives the street and house number the business fingerprint needs to merge a
Google record with the OSM record of the same business.

Google's content terms: a value only Google gave is kept at most
``settings.google_content_days`` after it was fetched, so each record carries
its fetch time (the time of the original answer, also when the ledger
reused it) and the time it expires. The place id is kept indefinitely.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, overload

import httpx

from prospectpro.config import Settings
from prospectpro.domain.area import Area
from prospectpro.domain.business import Business
from prospectpro.domain.business_types import resolve_business_type
from prospectpro.domain.clock import utcnow
from prospectpro.errors import InvalidInput
from prospectpro.gate.errors import OverBudget, ProviderError, ProviderErrorKind
from prospectpro.gate.prices import PRICES_DATE, price
from prospectpro.gate.types import GateRequest, ProviderSpec, Verdict
from prospectpro.places.locations import distance_m
from prospectpro.providers.protocols import CallContext, DiscoveryQuery, SourceQuote

NAME = "google"
SEARCH_PATH = "/v1/places:searchText"
DETAILS_PATH = "/v1/places/{place_id}"
SEARCH_PRICE = "google.text_search_enterprise"
DETAILS_PRICE = "google.place_details_enterprise"
ATTRIBUTION = "Google Maps"  # shown wherever Google's data is shown (the terms ask for it)
TERMS_URL = "https://cloud.google.com/maps-platform/terms/maps-service-terms"

PAGE_SIZE = 20
PAGES_PER_QUERY = 3  # Google returns 60 results at most over all pages of one query
MAX_BIAS_RADIUS_M = 50_000.0  # the largest circle Places accepts
CLOSED = frozenset({"CLOSED_TEMPORARILY", "CLOSED_PERMANENTLY"})

_PLACE_FIELDS = (
    "id",
    "displayName",
    "formattedAddress",
    "addressComponents",
    "location",
    "businessStatus",
    "types",
    "primaryType",
    "nationalPhoneNumber",
    "internationalPhoneNumber",
    "websiteUri",
    "rating",
    "userRatingCount",
    "googleMapsUri",
)
SEARCH_FIELD_MASK = ",".join([*(f"places.{f}" for f in _PLACE_FIELDS), "nextPageToken"])
DETAILS_FIELD_MASK = ",".join(_PLACE_FIELDS)

# The sub-circles a large campaign's area is split into, after the whole area:
# six circles of half the radius around the centre, covering the area between them.
_RING = tuple((math.cos(math.radians(a)), math.sin(math.radians(a))) for a in range(0, 360, 60))
_SYNONYM_QUERIES = 2  # type synonyms used after the label, each over the whole area and its sub-circles


# -- the provider, as the gate runs it -------------------------------------------------------------
def spec(settings: Settings) -> ProviderSpec | None:
    """Google as the gate calls it; None when no API key is configured (the source is then not offered)."""
    key = settings.google_places_api_key.strip()
    if not key:
        return None
    return ProviderSpec(
        name=NAME,
        base_url=settings.google_places_base_url.rstrip("/"),
        secrets=(key,),
        headers={"X-Goog-Api-Key": key, "Content-Type": "application/json"},
        rate_per_second=settings.google_places_rate_per_second,
        classify=classify,
        paid=True,
    )


def classify(response: httpx.Response) -> Verdict:
    """Read Google's google.rpc.Status envelope: 403 auth, 400 bad request, 429 and 5xx retried."""
    code = response.status_code
    if 200 <= code < 300:
        return Verdict.success()
    status, message, reasons, retry_delay = _envelope(response)
    what = " ".join(p for p in (f"HTTP {code}", status, *reasons) if p)
    text = f"{what}: {message}" if message else what
    if code in (401, 403):
        return Verdict(kind=ProviderErrorKind.auth, message=text)
    if code == 429:
        # A per-day quota will not come back by retrying; a per-minute one will.
        if "per day" in message.lower() or "perday" in message.lower().replace(" ", ""):
            return Verdict(kind=ProviderErrorKind.quota_exhausted, message=text)
        # Retry-After (the header) is read by the gate; Google's own RetryInfo is in the body.
        return Verdict(retry=True, retry_after=retry_delay, kind=ProviderErrorKind.rate_limited, message=text)
    if code >= 500:
        return Verdict(retry=True, retry_after=retry_delay, kind=ProviderErrorKind.unavailable, message=text)
    return Verdict(kind=ProviderErrorKind.bad_request, message=text)


def _envelope(response: httpx.Response) -> tuple[str, str, list[str], float | None]:
    """(status, message, ErrorInfo reasons, RetryInfo delay) of an error body; blanks when it is not one."""
    try:
        data = response.json()
    except ValueError:
        return "", "", [], None
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return "", "", [], None
    reasons: list[str] = []
    delay = None
    for detail in error.get("details") or []:
        if not isinstance(detail, dict):
            continue
        kind = str(detail.get("@type", ""))
        if kind.endswith("google.rpc.ErrorInfo") and detail.get("reason"):
            reasons.append(str(detail["reason"]))
        elif kind.endswith("google.rpc.RetryInfo"):
            raw = str(detail.get("retryDelay") or "").rstrip("s")
            try:
                delay = float(raw)
            except ValueError:
                pass
    return str(error.get("status") or ""), str(error.get("message") or "")[:500], reasons, delay


# -- what discovery returns ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Discovered(Sequence[Business]):
    """The businesses a source found, and what the discovery stage reports about the search.

    A sequence of the businesses (the ``DiscoverySource`` protocol); the stage
    also reads ``skipped`` ({"closed": n, "outside_area": n}),
    ``budget_exhausted`` (a paid call was not made for the budget) and
    ``failure`` (the ProviderError that ended the search early: what was found
    before it is kept).
    """

    businesses: tuple[Business, ...] = ()
    skipped: Mapping[str, int] = field(default_factory=dict)
    budget_exhausted: bool = False
    failure: ProviderError | None = None
    requests: int = 0  # ledgered page calls made (or answered from the ledger)

    @overload
    def __getitem__(self, index: int) -> Business: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Business]: ...
    def __getitem__(self, index: int | slice) -> Business | Sequence[Business]:
        return self.businesses[index]

    def __len__(self) -> int:
        return len(self.businesses)

    def __iter__(self) -> Iterator[Business]:
        return iter(self.businesses)


@dataclass(frozen=True)
class SearchPlan:
    """One Text Search (up to 60 results over three pages): its text and its location bias circle."""

    text_query: str
    latitude: float
    longitude: float
    radius_m: float
    whole_area: bool = True  # False for the sub-circles of a split area

    def bias(self) -> dict[str, Any]:
        return {
            "circle": {
                "center": {"latitude": round(self.latitude, 6), "longitude": round(self.longitude, 6)},
                "radius": round(min(self.radius_m, MAX_BIAS_RADIUS_M), 1),
            }
        }

    def body(self, page_token: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"textQuery": self.text_query, "pageSize": PAGE_SIZE, "locationBias": self.bias()}
        if page_token:
            body["pageToken"] = page_token
        return body


def search_plans(type_name: str, area: Area) -> list[SearchPlan]:
    """Every Text Search a campaign may make, in order: the type's label over the whole area, then over
    six sub-circles, then the same for a couple of its synonyms. A campaign uses as many as it needs."""
    label, synonyms = _type_words(type_name)
    circles = [(area.latitude, area.longitude, area.radius_m, True)]
    half = area.radius_m / 2
    for dx, dy in _RING:
        lat = area.latitude + (dy * half) / 111_320.0
        lon = area.longitude + (dx * half) / (111_320.0 * max(math.cos(math.radians(area.latitude)), 0.01))
        circles.append((lat, lon, half, False))
    return [
        SearchPlan(f"{words} in {area.label}", lat, lon, radius, whole)
        for words in (label, *synonyms[:_SYNONYM_QUERIES])
        for lat, lon, radius, whole in circles
    ]


def _type_words(type_name: str) -> tuple[str, tuple[str, ...]]:
    try:
        business_type = resolve_business_type(type_name)
    except InvalidInput:
        return type_name.replace("_", " "), ()
    return business_type.label, business_type.synonyms


# -- the source ----------------------------------------------------------------------------------------
class GooglePlacesSource:
    """Businesses from Google Places Text Search, for the tiers that allow a paid source."""

    name = NAME
    paid = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def page_price(self) -> Decimal:
        return price(SEARCH_PRICE, self.settings.prices)

    @property
    def reuse_days(self) -> float:
        # A recorded answer serves later campaigns no longer than Google's terms let us keep it.
        return float(min(self.settings.answer_cache_days, self.settings.google_content_days))

    def max_requests(self, query: DiscoveryQuery, wanted: int | None = None) -> int:
        """The most pages this campaign's discovery makes: three per query, as many queries as ``wanted`` needs."""
        need = query.wanted if wanted is None else wanted
        if need <= 0:
            return 0
        queries = min(math.ceil(need / (PAGE_SIZE * PAGES_PER_QUERY)), len(search_plans(query.type_name, query.area)))
        return queries * PAGES_PER_QUERY

    def quote(self, query: DiscoveryQuery) -> SourceQuote:
        pages = self.max_requests(query)
        unit = self.page_price
        most = len(search_plans(query.type_name, query.area)) * PAGE_SIZE * PAGES_PER_QUERY
        usual = min(math.ceil(query.wanted / PAGE_SIZE), pages)
        note = (
            f"Google Places Text Search (Enterprise) at ${unit} per page of {PAGE_SIZE} places "
            f"(list price of {PRICES_DATE}), at most {pages} pages"
        )
        if query.wanted > most:
            note += f"; Google gives at most {most} places for one campaign"
        return SourceQuote(NAME, pages, unit * pages, unit * usual, note)

    def discover(self, query: DiscoveryQuery, ctx: CallContext) -> Discovered:
        wanted = min(ctx.wanted, query.wanted)
        limit = self.max_requests(query, wanted)
        area = query.area
        found: dict[str, Business] = {}
        skipped = {"closed": 0, "outside_area": 0}
        requests = 0

        def outcome(**extra: Any) -> Discovered:
            return Discovered(tuple(found.values()), skipped, requests=requests, **extra)

        ran_dry: set[str] = set()  # texts Google had fewer than 60 results for over the whole area
        plans = search_plans(query.type_name, area)
        for plan in plans:
            if plan.text_query in ran_dry:
                continue  # a smaller circle of the same text would only repeat a part of them
            token: str | None = None
            for _page in range(PAGES_PER_QUERY):
                if len(found) >= wanted or requests >= limit:
                    return outcome()
                try:
                    body, fetched_at = self._page(ctx, plan, token)
                except OverBudget:
                    return outcome(budget_exhausted=True)
                except ProviderError as exc:
                    return outcome(failure=exc)
                requests += 1
                expires_at = fetched_at + timedelta(days=self.settings.google_content_days)
                for record in body.get("places") or []:
                    business = to_business(record, fetched_at, expires_at, area.country)
                    if business is None or business.source_id in found:
                        continue
                    if str(record.get("businessStatus") or "") in CLOSED:
                        skipped["closed"] += 1
                    elif not _inside(business, area):
                        skipped["outside_area"] += 1
                    else:
                        found[business.source_id] = business
                token = body.get("nextPageToken") or None
                if not token:
                    if _page < PAGES_PER_QUERY - 1 and plan.whole_area:
                        if plan.text_query == plans[0].text_query:
                            return outcome()  # Google has no more of this type here: other words find less
                        ran_dry.add(plan.text_query)
                    break
            if len(found) >= wanted:
                break
        return outcome()

    def _page(self, ctx: CallContext, plan: SearchPlan, token: str | None) -> tuple[dict[str, Any], datetime]:
        """One Text Search page through the gate: (Google's answer, when Google gave it)."""
        body = plan.body(token)
        key = {
            "textQuery": plan.text_query,
            "bias": plan.bias(),
            "pageSize": PAGE_SIZE,
            "pageToken": token,
            "fieldMask": SEARCH_FIELD_MASK,
        }

        def fetch() -> dict[str, Any]:
            response = ctx.gate.http(NAME).request(
                "POST", SEARCH_PATH, json=body, headers={"X-Goog-FieldMask": SEARCH_FIELD_MASK}
            )
            return {"fetched_at": _iso(utcnow()), "answer": _json_object(response)}

        request = GateRequest(NAME, "text_search", key=key, max_cost=self.page_price, reuse_days=self.reuse_days)
        return _unwrap(ctx.gate.call(ctx, request, fetch).body)

    def details(self, ctx: CallContext, place_id: str) -> tuple[dict[str, Any], datetime]:
        """Place Details (New) by place id, through the gate, never reused from another campaign
        (a refresh is asked for to get today's values): (Google's answer, when it gave it)."""
        path = DETAILS_PATH.format(place_id=place_id)

        def fetch() -> dict[str, Any]:
            response = ctx.gate.http(NAME).request("GET", path, headers={"X-Goog-FieldMask": DETAILS_FIELD_MASK})
            return {"fetched_at": _iso(utcnow()), "answer": _json_object(response)}

        request = GateRequest(
            NAME,
            "place_details",
            key={"placeId": place_id, "fieldMask": DETAILS_FIELD_MASK},
            max_cost=price(DETAILS_PRICE, self.settings.prices),
            reuse_days=0,
        )
        return _unwrap(ctx.gate.call(ctx, request, fetch).body)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise ProviderError(NAME, ProviderErrorKind.malformed, "the answer is not JSON") from None
    if not isinstance(data, dict):
        raise ProviderError(NAME, ProviderErrorKind.malformed, "the answer is not a JSON object")
    places = data.get("places")
    if places is not None and not isinstance(places, list):
        raise ProviderError(NAME, ProviderErrorKind.malformed, "places is not a list")
    return data


def _unwrap(body: Any) -> tuple[dict[str, Any], datetime]:
    if not isinstance(body, dict) or not isinstance(body.get("answer"), dict):
        raise ProviderError(NAME, ProviderErrorKind.malformed, "the recorded answer has an unexpected shape")
    try:
        fetched_at = datetime.fromisoformat(str(body["fetched_at"]))
    except (KeyError, ValueError):
        fetched_at = utcnow()
    return body["answer"], fetched_at


def _inside(business: Business, area: Area) -> bool:
    if business.latitude is None or business.longitude is None:
        return True  # no position to judge by: Google matched it to the area's text
    return distance_m(area.latitude, area.longitude, business.latitude, business.longitude) <= area.radius_m


def to_business(
    record: Mapping[str, Any], fetched_at: datetime, expires_at: datetime, country: str | None = None
) -> Business | None:
    """A Places (New) record as a Business: each value from the field that holds it, or None.

    None for a record without an id or a name (nothing to identify or call it by).
    """
    place_id = str(record.get("id") or "").strip()
    display = record.get("displayName")
    name = str(display.get("text") or "").strip() if isinstance(display, dict) else ""
    if not place_id or not name:
        return None
    parts = _components(record.get("addressComponents"))
    raw_location = record.get("location")
    location: Mapping[str, Any] = raw_location if isinstance(raw_location, dict) else {}
    phone = _text(record.get("internationalPhoneNumber")) or _text(record.get("nationalPhoneNumber"))
    rating = record.get("rating")
    reviews = record.get("userRatingCount")
    return Business(
        source=NAME,
        source_id=place_id,
        name=name,
        category=_text(record.get("primaryType")),
        street=parts.get("route"),
        housenumber=parts.get("street_number"),
        postcode=parts.get("postal_code"),
        city=parts.get("locality") or parts.get("postal_town"),
        country=(parts.get("country") or country or None),
        phone=phone,
        website=_text(record.get("websiteUri")),
        latitude=_number(location.get("latitude")),
        longitude=_number(location.get("longitude")),
        source_url=_text(record.get("googleMapsUri")),
        formatted_address=_text(record.get("formattedAddress")),
        rating=_number(rating),
        review_count=int(reviews) if isinstance(reviews, int | float) and not isinstance(reviews, bool) else None,
        fetched_at=_iso(fetched_at),
        expires_at=_iso(expires_at),
    )


def _components(raw: Any) -> dict[str, str]:
    """addressComponents → {type: text}: the country's short code, the long text of the others."""
    found: dict[str, str] = {}
    for component in raw if isinstance(raw, list) else []:
        if not isinstance(component, dict):
            continue
        for kind in component.get("types") or []:
            text = component.get("shortText") if kind == "country" else component.get("longText")
            if kind not in found and _text(text):
                found[kind] = str(text).strip()
    return found


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _text(value: Any) -> str | None:
    text = str(value).strip() if isinstance(value, str) else ""
    return text or None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
