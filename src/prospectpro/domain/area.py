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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Area:
        return cls(
            latitude=float(data["latitude"]),
            longitude=float(data["longitude"]),
            radius_m=float(data["radius_m"]),
            label=str(data["label"]),
            country=data.get("country"),
        )
