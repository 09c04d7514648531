"""Where a campaign looks: a circle on the map, as its location text resolved to."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Area:
    latitude: float
    longitude: float
    radius_m: float
    label: str
    country: str | None
    # A geocoded place (live OpenStreetMap): its box (south, west, north, east) and its OSM object,
    # "relation/62422"; the circle above covers the box. None for local places and coordinates.
    bounds: tuple[float, float, float, float] | None = None
    osm_ref: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for extra in ("bounds", "osm_ref"):  # the same JSON as before for areas without them
            if data[extra] is None:
                del data[extra]
        if self.bounds is not None:
            data["bounds"] = list(self.bounds)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Area:
        return cls(
            latitude=float(data["latitude"]),
            longitude=float(data["longitude"]),
            radius_m=float(data["radius_m"]),
            label=str(data["label"]),
            country=data.get("country"),
            bounds=tuple(float(v) for v in data["bounds"]) if data.get("bounds") else None,  # type: ignore[arg-type]
            osm_ref=data.get("osm_ref"),
        )
