"""The embedded, free discovery source: businesses from the imported OSM data.

Every field comes from a tag of the object as OSM has it; a missing tag stays
None. The only fallback is the country, taken from the searched area when the
object has no addr:country (the area's country is itself derived from OSM).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prospectpro.domain.area import Area
from prospectpro.domain.business import Business
from prospectpro.domain.normalize import first_value
from prospectpro.places.locations import country_code, distance_m, tagged_places_near
from prospectpro.providers.protocols import CallContext, DiscoveryQuery
from prospectpro.store.db import Database

_TYPE_NAMES = {"n": "node", "w": "way", "r": "relation"}

PHONE_KEYS = ("phone", "contact:phone", "contact:mobile")
WEBSITE_KEYS = ("website", "contact:website", "url")
EMAIL_KEYS = ("email", "contact:email")


class OsmPlacesSource:
    name = "osm"

    def __init__(self, db: Database) -> None:
        self.db = db

    def discover(self, query: DiscoveryQuery, ctx: CallContext) -> list[Business]:
        # Every match, not just ``query.wanted``: scoring, merging and skipping what
        # was delivered before all need more candidates than leads; a local query is free.
        return self.search(query.tags, query.area)

    def search(self, tags: Sequence[str], area: Area, limit: int | None = None) -> list[Business]:
        """Places with any of tags ("amenity=cafe") inside the area, nearest first."""
        wanted = list(dict.fromkeys(t.strip() for t in tags if t and t.strip()))
        if not wanted or (limit is not None and limit <= 0):
            return []
        found: list[tuple[float, str, str, Business]] = []
        for row in tagged_places_near(self.db, wanted, area):
            dist = distance_m(area.latitude, area.longitude, row.latitude, row.longitude)
            if dist <= area.radius_m:
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
