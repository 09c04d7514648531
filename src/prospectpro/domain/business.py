"""A business as a source reported it, normalized but never invented."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class Business:
    source: str  # "osm", later "google_places" …
    source_id: str  # stable id within the source, e.g. "node/60068035"
    name: str
    category: str | None = None  # e.g. "amenity=cafe"
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
    # Other sources merged into this record by deduplication, e.g. ["osm:way/1"].
    also_from: tuple[str, ...] = field(default_factory=tuple)

    @property
    def address(self) -> str | None:
        street = " ".join(p for p in (self.street, self.housenumber) if p)
        town = " ".join(p for p in (self.postcode, self.city) if p)
        parts = [p for p in (street, town) if p]
        return ", ".join(parts) or None

    @property
    def ref(self) -> str:
        return f"{self.source}:{self.source_id}"

    @property
    def sources(self) -> list[str]:
        return [self.ref, *self.also_from]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["also_from"] = list(self.also_from)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Business:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["also_from"] = tuple(values.get("also_from") or ())
        return cls(**values)

    def merged_with(self, other: Business) -> Business:
        """Fill this record's gaps from another report of the same business."""
        filled: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("source", "source_id", "also_from"):
                continue
            if getattr(self, f.name) in (None, "") and getattr(other, f.name) not in (None, ""):
                filled[f.name] = getattr(other, f.name)
        refs = [r for r in (*self.also_from, *other.sources) if r != self.ref]
        return replace(self, **filled, also_from=tuple(dict.fromkeys(refs)))
