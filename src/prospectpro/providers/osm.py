"""The free discovery source ``osm``: businesses from OpenStreetMap, through the places index.

Which data serves a campaign, deterministically:

1. Local first: an area inside an imported extract (a locality of the local
   data, or coordinates inside an extract's bounds) is read from the index,
   with no network at all.
2. A fresh coverage record of these tags for this area (``discovery_cache_days``):
   the index too, with no call.
3. Otherwise live: one Overpass query for the tags in the area, through the
   gate (ledgered with max_cost 0), stored into the index with a coverage
   record; then the index is read as in 1. A failure raises ``ProviderError``
   (the discovery stage names the source in ``failed_sources``).

Every field comes from a tag of the object as OSM has it; a missing tag stays
None. The only fallback is the country, taken from the searched area when the
object has no addr:country (the area's country is itself derived from OSM).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from prospectpro.config import Settings
from prospectpro.domain.area import Area
from prospectpro.domain.business import Business
from prospectpro.domain.normalize import first_value
from prospectpro.gate.errors import ProviderError, ProviderErrorKind
from prospectpro.gate.types import GateRequest
from prospectpro.places.coverage import area_box, covering, record_coverage, served_locally
from prospectpro.places.importer import store_live_places
from prospectpro.places.locations import country_code, distance_m, tagged_places_near
from prospectpro.providers import overpass
from prospectpro.providers.protocols import CallContext, DiscoveryQuery
from prospectpro.store.db import Database

_TYPE_NAMES = {"n": "node", "w": "way", "r": "relation"}

PHONE_KEYS = ("phone", "contact:phone", "contact:mobile")
WEBSITE_KEYS = ("website", "contact:website", "url")
EMAIL_KEYS = ("email", "contact:email")


class OsmPlacesSource:
    name = "osm"

    def __init__(self, db: Database, settings: Settings | None = None) -> None:
        self.db = db
        self.settings = settings  # None: the local index only (no live OpenStreetMap)

    def discover(self, query: DiscoveryQuery, ctx: CallContext) -> list[Business]:
        # Every match, not just ``query.wanted``: scoring, merging and skipping what
        # was delivered before all need more candidates than leads; a local query is free.
        if self.live and not served_locally(self.db, query.area):
            self.ensure_fresh(query.tags, query.area, ctx)
        return self.search(query.tags, query.area)

    @property
    def live(self) -> bool:
        return self.settings is not None and overpass.spec(self.settings) is not None

    def ensure_fresh(self, tags: Sequence[str], area: Area, ctx: CallContext, *, force: bool = False) -> int | None:
        """Fetch the tags in the area from Overpass unless a fresh coverage record has them (or ``force``).

        Returns how many objects were stored, or None when the index already covered it.
        """
        assert self.settings is not None
        wanted = [t for t in dict.fromkeys(t.strip() for t in tags) if t]
        days = self.settings.discovery_cache_days
        if not force and covering(self.db, source=overpass.NAME, tags=wanted, area=area, max_age_days=days):
            return None
        settings = self.settings
        query = overpass.build_query(wanted, area)

        def fetch_and_store() -> dict[str, Any]:
            # The ledger keeps this summary, not the answer: the answer's home is the places index.
            try:
                client = ctx.gate.http(overpass.NAME)
            except LookupError as exc:  # a gate without HTTP clients (PASS_THROUGH): a source failure, not a crash
                raise ProviderError(overpass.NAME, ProviderErrorKind.auth, f"not configured: {exc}") from None
            fetched = overpass.fetch(self.db, settings, client.request, wanted, area)
            stored = store_live_places(self.db, fetched.elements)
            record_coverage(self.db, source=overpass.NAME, tags=wanted, area=area, elements=stored)
            osm3s = fetched.meta.get("osm3s") or {}
            return {"elements": len(fetched.elements), "stored": stored, "osm_base": osm3s.get("timestamp_osm_base")}

        request = GateRequest(
            overpass.NAME, "interpreter", key={"query": query}, max_cost=Decimal("0"), reuse_days=0
        )
        answer = ctx.gate.call(ctx, request, fetch_and_store)
        body = answer.body if isinstance(answer.body, dict) else {}
        return int(body.get("stored") or 0)

    def search(self, tags: Sequence[str], area: Area, limit: int | None = None) -> list[Business]:
        """Places with any of tags ("amenity=cafe") inside the area, nearest first."""
        wanted = list(dict.fromkeys(t.strip() for t in tags if t and t.strip()))
        if not wanted or (limit is not None and limit <= 0):
            return []
        found: list[tuple[float, str, str, Business]] = []
        # A geocoded place is its box, not all of the circle around it (that holds the box).
        south, west, north, east = area_box(area) if area.bounds is not None else (-90, -180, 90, 180)
        across = west > east  # a box across the antimeridian (Fiji, Chukotka)
        for row in tagged_places_near(self.db, wanted, area):
            dist = distance_m(area.latitude, area.longitude, row.latitude, row.longitude)
            lon_in = (row.longitude >= west or row.longitude <= east) if across else west <= row.longitude <= east
            if dist <= area.radius_m and south <= row.latitude <= north and lon_in:
                business = to_business(row, wanted, area)
                found.append((dist, business.name, business.source_id, business))
        found.sort(key=lambda item: item[:3])
        chosen = found if limit is None else found[:limit]
        return [business for *_, business in chosen]


def to_business(row: Any, wanted: Sequence[str], area: Area | None = None) -> Business:
    """A places row as a Business: each field from the OSM tag that holds it, or None."""
    tags: Mapping[str, str] = row.tags or {}
    source_id = f"{_TYPE_NAMES[row.osm_type]}/{row.osm_id}"
    return Business(
        source="osm",
        source_id=source_id,
        name=row.name,
        category=_category(tags, wanted),
        street=_tag(tags, "addr:street"),
        housenumber=_tag(tags, "addr:housenumber"),
        postcode=_tag(tags, "addr:postcode"),
        city=_tag(tags, "addr:city"),
        country=country_code(tags.get("addr:country")) or (area.country if area else None),
        phone=first_value(_first_tag(tags, PHONE_KEYS)),
        website=_first_tag(tags, WEBSITE_KEYS),
        email=first_value(_first_tag(tags, EMAIL_KEYS)),
        latitude=row.latitude,
        longitude=row.longitude,
        opening_hours=_tag(tags, "opening_hours"),
        source_url=f"https://www.openstreetmap.org/{source_id}",
    )


def _category(tags: Mapping[str, str], wanted: Sequence[str]) -> str | None:
    for tag in wanted:
        key, _, value = tag.partition("=")
        if (tags.get(key) or "").strip() == value:
            return tag
    return None


def _tag(tags: Mapping[str, str], key: str) -> str | None:
    value = (tags.get(key) or "").strip()
    return value or None


def _first_tag(tags: Mapping[str, str], keys: Sequence[str]) -> str | None:
    return next((v for v in (_tag(tags, k) for k in keys) if v), None)
