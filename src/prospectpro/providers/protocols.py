"""The small protocols every external source implements.

Discovery finds businesses; enrichment adds contact data to one business.
Paid providers (Google Places, Hunter.io, NeverBounce) implement the same
protocols and record their calls and cost in ``Enrichment.calls``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Protocol

from prospectpro.domain.business import Business
from prospectpro.places.locations import Area


@dataclass(frozen=True, slots=True)
class DiscoveryQuery:
    tags: tuple[str, ...]  # OpenStreetMap tags of the business type, e.g. ("amenity=cafe",)
    type_name: str  # the canonical business type, e.g. "cafe"
    area: Area


class DiscoverySource(Protocol):
    name: str

    def discover(self, query: DiscoveryQuery) -> Sequence[Business]: ...


@dataclass(frozen=True, slots=True)
class Enrichment:
    """What enrichment learned about one business, with where it came from."""

    email: str | None = None
    email_source: str | None = None  # "osm", "website:https://…/contact", "hunter" …
    email_status: str | None = None  # valid | invalid | accept_all | unknown …
    cost: Decimal = Decimal("0")
    steps: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def with_step(self, provider: str, outcome: str, **extra: Any) -> Enrichment:
        return replace(self, steps=(*self.steps, {"provider": provider, "outcome": outcome, **extra}))

    def to_dict(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "email_source": self.email_source,
            "email_status": self.email_status,
            "cost": str(self.cost),
            "steps": list(self.steps),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Enrichment:
        return cls(
            email=data.get("email"),
            email_source=data.get("email_source"),
            email_status=data.get("email_status"),
            cost=Decimal(str(data.get("cost", "0"))),
            steps=tuple(data.get("steps") or ()),
        )


class Enricher(Protocol):
    name: str

    def enrich(self, business: Business, found: Enrichment) -> Enrichment:
        """Return ``found`` plus what this step learned (or ``found`` unchanged)."""
        ...
