"""Google Places API (New) as external-apis.md §1 describes it: Text Search and Place Details.

``install(sim, places=..., api_key=...)`` adds the routes and returns a
``GoogleState``: the dataset (by text query, or one for every query), the
page tokens it issued, and counts of the calls it answered (the simulator
records every call). What it enforces, as the real API does:

* the API key (``X-Goog-Api-Key`` or ``?key=``): else 403 PERMISSION_DENIED,
  ErrorInfo reason API_KEY_INVALID — and, like some providers, it echoes the
  key it got in the message (``echo_key``), so redaction is tested;
* a field mask (``X-Goog-FieldMask`` or ``$fields``/``fields``): else 400
  INVALID_ARGUMENT; only the masked fields are returned;
* ``textQuery`` required; ``pageSize`` 1..20 (0 → 20, more → 20, negative → 400);
* a ``pageToken`` is valid only with the same other parameters as the
  request it came from (else 400 INVALID_ARGUMENT); 60 results at most;
* no results: ``{}``.

Faults (429 RESOURCE_EXHAUSTED, 500 INTERNAL, 503 UNAVAILABLE, malformed
bodies) are injected with ``sim.fail(SEARCH_PATH, error(...))``.
"""

from __future__ import annotations

import itertools
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.sim.server import SimRequest, SimResponse, Simulator

SEARCH_PATH = "/v1/places:searchText"
DETAILS_PREFIX = "/v1/places/"
MAX_RESULTS = 60
_PAGING_PARAMS = ("pageSize", "maxResultCount", "pageToken")


def error(code: int, status: str, message: str, reason: str | None = None, **headers: str) -> SimResponse:
    """A google.rpc.Status envelope with its HTTP code."""
    body: dict[str, Any] = {"code": code, "status": status, "message": message}
    if reason is not None:
        body["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "googleapis.com",
                "metadata": {"service": "places.googleapis.com"},
            }
        ]
    return SimResponse(code, {"error": body}, headers=dict(headers))


def rate_limited(retry_after: str | None = None) -> SimResponse:
    """429 RESOURCE_EXHAUSTED (a per-minute quota), with a Retry-After header when given."""
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return error(
        429,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded for quota metric 'SearchText requests' and limit 'SearchText requests per minute' "
        "of service 'places.googleapis.com'.",
        "RATE_LIMIT_EXCEEDED",
        **headers,
    )


def internal() -> SimResponse:
    return error(500, "INTERNAL", "Internal error encountered.")


def unavailable() -> SimResponse:
    return error(503, "UNAVAILABLE", "The service is currently unavailable.")


def place(
    place_id: str,
    name: str,
    latitude: float,
    longitude: float,
    *,
    status: str = "OPERATIONAL",
    street: str | None = None,
    number: str | None = None,
    postcode: str | None = None,
    city: str | None = "Helsinki",
    country: str = "FI",
    phone: str | None = None,
    international_phone: str | None = None,
    website: str | None = None,
    rating: float | None = None,
    reviews: int | None = None,
    primary_type: str = "cafe",
) -> dict[str, Any]:
    """A full Places (New) record; the simulator returns the masked part of it. A missing value is omitted."""
    components = [
        {"longText": value, "shortText": value, "types": [kind], "languageCode": "fi"}
        for kind, value in (("street_number", number), ("route", street), ("postal_code", postcode), ("locality", city))
        if value
    ]
    components.append({"longText": "Finland", "shortText": country, "types": ["country", "political"]})
    address = ", ".join(
        p for p in (" ".join(x for x in (street, number) if x), " ".join(x for x in (postcode, city) if x)) if p
    )
    record: dict[str, Any] = {
        "id": place_id,
        "name": f"places/{place_id}",
        "displayName": {"text": name, "languageCode": "fi"},
        "formattedAddress": f"{address}, Finland" if address else "Finland",
        "addressComponents": components,
        "location": {"latitude": latitude, "longitude": longitude},
        "businessStatus": status,
        "types": [primary_type, "food", "point_of_interest", "establishment"],
        "primaryType": primary_type,
        "googleMapsUri": f"https://maps.google.com/?cid={zlib.crc32(place_id.encode())}",
        "nationalPhoneNumber": phone,
        "internationalPhoneNumber": international_phone,
        "websiteUri": website,
        "rating": rating,
        "userRatingCount": reviews,
    }
    return {k: v for k, v in record.items() if v is not None}


def grid(count: int, *, prefix: str = "ChIJsim", latitude: float = 60.1699, longitude: float = 24.9384,
         step: float = 0.001, **fields: Any) -> list[dict[str, Any]]:
    """``count`` open places near a point, each with a phone, a website and a rating."""
    return [
        place(
            f"{prefix}{i:04d}",
            f"Sim Cafe {prefix} {i}",
            latitude + step * (i % 10),
            longitude + step * (i // 10),
            street="Simulaattorinkatu",
            number=str(i + 1),
            postcode="00100",
            international_phone=f"+358 9 {100000 + i}",
            website=f"https://cafe-{prefix.lower()}-{i}.example.fi/",
            rating=round(3.5 + (i % 15) / 10, 1),
            reviews=10 + i,
            **fields,
        )
        for i in range(count)
    ]


@dataclass
class GoogleState:
    sim: Simulator
    api_key: str
    places: list[dict[str, Any]]  # for every text query not in by_query
    by_query: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    echo_key: bool = True
    tokens: dict[str, tuple[str, int]] = field(default_factory=dict)  # token → (other params, offset)
    _serial: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def search_calls(self) -> list[SimRequest]:
        return self.sim.calls_to(SEARCH_PATH, "POST")

    @property
    def details_calls(self) -> list[SimRequest]:
        return self.sim.calls_to(DETAILS_PREFIX, "GET")

    def all_places(self) -> list[dict[str, Any]]:
        return [*self.places, *(p for ps in self.by_query.values() for p in ps)]

    # -- checks every method makes -----------------------------------------------------
    def _refused(self, request: SimRequest) -> SimResponse | None:
        key = request.headers.get("x-goog-api-key") or request.arg("key")
        if key != self.api_key:
            shown = f" ({key})" if self.echo_key and key else ""
            return error(
                403,
                "PERMISSION_DENIED",
                f"API key not valid{shown}. Please pass a valid API key.",
                "API_KEY_INVALID",
            )
        if not self._mask(request):
            return error(
                400,
                "INVALID_ARGUMENT",
                "FieldMask is a required parameter. See https://cloud.google.com/apis/docs/system-parameters "
                "on how to provide it.",
            )
        return None

    @staticmethod
    def _mask(request: SimRequest) -> list[str]:
        raw = request.headers.get("x-goog-fieldmask") or request.arg("$fields") or request.arg("fields") or ""
        return [f for f in raw.split(",") if f]

    # -- the routes ----------------------------------------------------------------------
    def search(self, request: SimRequest) -> SimResponse:
        refused = self._refused(request)
        if refused is not None:
            return refused
        try:
            body = request.json()
        except ValueError:
            return error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        if not isinstance(body, dict) or not str(body.get("textQuery") or "").strip():
            return error(400, "INVALID_ARGUMENT", "Empty text_query.")
        size = body.get("pageSize", body.get("maxResultCount", 0)) or 0
        if not isinstance(size, int) or size < 0:
            return error(400, "INVALID_ARGUMENT", "page_size must be non-negative.")
        size = min(size or 20, 20)
        others = json.dumps({k: v for k, v in body.items() if k not in _PAGING_PARAMS}, sort_keys=True)
        offset = 0
        token = body.get("pageToken")
        if token:
            issued = self.tokens.get(token)
            if issued is None or issued[0] != others:
                return error(
                    400,
                    "INVALID_ARGUMENT",
                    "Request parameters other than page_size and page_token must match the request "
                    "that returned the page token.",
                )
            offset = issued[1]
        dataset = self.by_query.get(body["textQuery"], self.places)[:MAX_RESULTS]
        page = dataset[offset : offset + size]
        mask = self._mask(request)
        answer: dict[str, Any] = {}
        if page:
            answer["places"] = [_masked(p, mask, prefix="places.") for p in page]
        if offset + size < len(dataset) and ("nextPageToken" in mask or "*" in mask):
            new = f"sim-token-{next(self._serial)}-{offset + size}"
            self.tokens[new] = (others, offset + size)
            answer["nextPageToken"] = new
        return SimResponse(200, answer)

    def details(self, request: SimRequest) -> SimResponse:
        refused = self._refused(request)
        if refused is not None:
            return refused
        place_id = request.path[len(DETAILS_PREFIX) :]
        found = next((p for p in self.all_places() if p["id"] == place_id), None)
        if found is None:
            return error(404, "NOT_FOUND", f"Place '{place_id}' not found.")
        return SimResponse(200, _masked(found, self._mask(request), prefix=""))


def _masked(record: Mapping[str, Any], mask: list[str], *, prefix: str) -> dict[str, Any]:
    if "*" in mask or f"{prefix}*" in mask:
        return dict(record)
    wanted = {m[len(prefix) :] for m in mask if m.startswith(prefix)} if prefix else set(mask)
    return {k: v for k, v in record.items() if k in wanted}


def install(
    sim: Simulator,
    places: list[dict[str, Any]] | None = None,
    *,
    by_query: dict[str, list[dict[str, Any]]] | None = None,
    api_key: str = "sim-google-key",
    echo_key: bool = True,
) -> GoogleState:
    state = GoogleState(sim=sim, api_key=api_key, places=list(places or []), by_query=dict(by_query or {}),
                        echo_key=echo_key)
    sim.route("POST", SEARCH_PATH, state.search)
    sim.route("GET", DETAILS_PREFIX, state.details, prefix=True)
    return state
