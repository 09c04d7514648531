"""A business as a source reported it, normalized but never invented.

Every value names its source. A record's own values come from its ``ref``
(``osm:node/1``, ``google:ChIJ…``); a value merged in from another report of
the same business (``merged_with``) keeps that report's provenance in
``field_sources``. Values from a source with content terms (Google) carry
the time they were fetched and the time they must be gone by: such a value
is only the best one when no source without an expiry has one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from typing import Any

# Sources whose values may be kept only for a while (Google's content terms);
# the others' values do not expire and win a merge.
EXPIRING_SOURCES = frozenset({"google"})

_ADDRESS_PARTS = ("street", "housenumber", "postcode", "city", "formatted_address")

# Not values about the business: identity and bookkeeping, never merged field by field.
_META = frozenset({"source", "source_id", "also_from", "field_sources", "fetched_at", "expires_at"})


@dataclass(frozen=True, slots=True)
class Business:
    source: str  # a shared source name: "osm", "google", "overture" …
    source_id: str  # stable id within the source, e.g. "node/60068035", a Google place id
    name: str
    category: str | None = None  # e.g. "amenity=cafe"; Google's primary type as it wrote it ("cafe")
    street: str | None = None
    housenumber: str | None = None
    postcode: str | None = None
    city: str | None = None
    country: str | None = None  # ISO 3166-1 alpha-2
    phone: str | None = None  # as the source wrote it (first number)
    website: str | None = None
    email: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    opening_hours: str | None = None
    source_url: str | None = None
    # The address in one line as the source wrote it, shown when the parts are missing.
    formatted_address: str | None = None
    rating: float | None = None  # the source's average rating (Google: 1–5)
    review_count: int | None = None
    # When this record's values were fetched, and when the values only it gave
    # must be cleared (ISO 8601, UTC); None for sources whose values do not expire.
    fetched_at: str | None = None
    expires_at: str | None = None
    # Other sources merged into this record by deduplication, e.g. ["osm:way/1"].
    also_from: tuple[str, ...] = field(default_factory=tuple)
    # Values taken from another report: {field: {"source": ref, "fetched_at": iso|None, "expires_at": iso|None}}.
    field_sources: dict[str, dict[str, str | None]] = field(default_factory=dict)

    def __hash__(self) -> int:  # field_sources is a dict: hash the identity, which equality implies
        return hash((self.source, self.source_id))

    @property
    def address(self) -> str | None:
        street = " ".join(p for p in (self.street, self.housenumber) if p)
        town = " ".join(p for p in (self.postcode, self.city) if p)
        parts = [p for p in (street, town) if p]
        return ", ".join(parts) or self.formatted_address or None

    @property
    def ref(self) -> str:
        return f"{self.source}:{self.source_id}"

    @property
    def sources(self) -> list[str]:
        return [self.ref, *self.also_from]

    @property
    def expires(self) -> bool:
        return self.source in EXPIRING_SOURCES

    def source_of(self, name: str) -> dict[str, str | None] | None:
        """Where the value of field ``name`` came from, or None when the record has no value for it."""
        if name in _META or getattr(self, name) in (None, ""):
            return None
        if name in self.field_sources:
            return dict(self.field_sources[name])
        return {"source": self.ref, "fetched_at": self.fetched_at, "expires_at": self.expires_at}

    def provenance(self) -> dict[str, dict[str, str | None]]:
        """Every field with a value → its source."""
        found = {f.name: self.source_of(f.name) for f in fields(self) if f.name not in _META}
        return {name: source for name, source in found.items() if source is not None}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["also_from"] = list(self.also_from)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Business:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["also_from"] = tuple(values.get("also_from") or ())
        values["field_sources"] = {k: dict(v) for k, v in (values.get("field_sources") or {}).items()}
        return cls(**values)

    def merged_with(self, other: Business) -> Business:
        """One record of two reports of the same business: every source id, the best value of each field.

        A value that does not expire (OSM, Overture) beats one that does
        (Google): Google fills the gaps. Between equals this record's value
        stays. The merged record is the non-expiring one's, so its ref is the
        lasting one.
        """
        if self.expires and not other.expires:
            return other.merged_with(self)
        taken: dict[str, Any] = {}
        sources = dict(self.field_sources)
        # An address is one value: parts of a lasting one are not mixed with an expiring one's.
        lasting_address = any(
            (s := self.source_of(name)) is not None and not _expiring(s) for name in _ADDRESS_PARTS
        )
        for f in fields(self):
            if f.name in _META:
                continue
            mine, theirs = self.source_of(f.name), other.source_of(f.name)
            if theirs is None:
                continue
            if f.name in _ADDRESS_PARTS and lasting_address and _expiring(theirs):
                continue
            if mine is None or (_expiring(mine) and not _expiring(theirs)):
                taken[f.name] = getattr(other, f.name)
                sources[f.name] = theirs
        refs = [r for r in (*self.also_from, *other.sources) if r != self.ref]
        return replace(self, **taken, also_from=tuple(dict.fromkeys(refs)), field_sources=sources)


def _expiring(source: dict[str, str | None]) -> bool:
    return bool(source.get("expires_at")) or str(source.get("source") or "").split(":", 1)[0] in EXPIRING_SOURCES


# A lead's columns (store/leads.py) and the business fields each is made of.
LEAD_FIELDS: dict[str, tuple[str, ...]] = {
    "business_name": ("name",),
    "address": _ADDRESS_PARTS,
    "phone": ("phone",),
    "website": ("website",),
    "category": ("category",),
    "latitude": ("latitude",),
    "longitude": ("longitude",),
    "rating": ("rating",),
    "review_count": ("review_count",),
}


def lead_provenance(business: Business) -> tuple[dict[str, dict[str, str | None]], datetime | None]:
    """({lead column: {"source": ref, "fetched_at": iso}}, when the first expiring value must go).

    A column made of several fields (the address) is as lasting as its
    least lasting part: one Google part makes it Google's.
    """
    columns: dict[str, dict[str, str | None]] = {}
    expiry: datetime | None = None
    for column, names in LEAD_FIELDS.items():
        found = [s for s in (business.source_of(n) for n in names) if s is not None]
        if not found:
            continue
        source = next((s for s in found if _expiring(s)), found[0])
        columns[column] = {"source": source.get("source"), "fetched_at": source.get("fetched_at")}
        if source.get("expires_at"):
            when = datetime.fromisoformat(str(source["expires_at"]))
            expiry = when if expiry is None else min(expiry, when)
    return columns, expiry
