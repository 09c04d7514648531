"""What a user asks for, and the stages a campaign goes through."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from prospectpro.domain.area import Area
from prospectpro.domain.text import NO_CONTROL_CHARACTERS
from prospectpro.errors import InvalidInput

MAX_RESULTS_LIMIT = 10_000


class Tier(StrEnum):
    """What enrichment may use: base is free sources only."""

    base = "base"
    professional = "professional"
    enterprise = "enterprise"


class Stage(StrEnum):
    queued = "queued"
    initializing = "initializing"
    discovering_businesses = "discovering_businesses"
    scoring_businesses = "scoring_businesses"
    enriching_contacts = "enriching_contacts"
    storing_results = "storing_results"
    finished = "finished"

    @property
    def band(self) -> tuple[int, int]:
        return STAGE_BANDS[self]

    @property
    def label(self) -> str:
        return STAGE_LABELS[self]

    def progress_at(self, fraction: float) -> int:
        """Progress inside this stage's band, fraction in [0, 1]."""
        low, high = self.band
        fraction = min(max(fraction, 0.0), 1.0)
        return int(low + (high - low) * fraction)


STAGE_BANDS: dict[Stage, tuple[int, int]] = {
    Stage.queued: (0, 0),
    Stage.initializing: (0, 10),
    Stage.discovering_businesses: (10, 30),
    Stage.scoring_businesses: (30, 50),
    Stage.enriching_contacts: (50, 90),
    Stage.storing_results: (90, 100),
    Stage.finished: (100, 100),
}

STAGE_LABELS: dict[Stage, str] = {
    Stage.queued: "Waiting for a worker…",
    Stage.initializing: "Initializing…",
    Stage.discovering_businesses: "Discovering businesses…",
    Stage.scoring_businesses: "Scoring and qualifying leads…",
    Stage.enriching_contacts: "Enriching contact information…",
    Stage.storing_results: "Storing results…",
    Stage.finished: "Finished",
}

BusinessTypeText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), NO_CONTROL_CHARACTERS
]
LocationText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NO_CONTROL_CHARACTERS
]


class CampaignRequest(BaseModel):
    """A campaign as submitted, before the type and location are resolved."""

    model_config = ConfigDict(extra="forbid")

    business_type: BusinessTypeText
    location: LocationText
    max_results: int = Field(default=20, ge=1, le=MAX_RESULTS_LIMIT)
    budget_limit: Decimal = Field(default=Decimal("5"), ge=0, le=Decimal("100000"), decimal_places=4)
    min_score: int = Field(default=50, ge=0, le=100)
    tier: Tier = Tier.base
    include_delivered: bool = False
    # The shared source names to restrict the campaign to (domain.tiers); None: every one the tier allows.
    sources: list[str] | None = Field(default=None, max_length=6)


_FIELD_NAMES = {
    "business_type": "business type",
    "location": "location",
    "max_results": "max results",
    "budget_limit": "budget",
    "min_score": "minimum score",
    "tier": "tier",
    "include_delivered": "include delivered",
    "sources": "sources",
}


def validation_message(errors: Sequence[Mapping[str, Any]], names: Mapping[str, str] | None = None) -> str:
    """One readable line from pydantic's errors: 'max results must be at most 10000'."""
    names = {**_FIELD_NAMES, **(names or {})}
    parts = []
    for err in errors:
        loc = ".".join(str(p) for p in err["loc"]) or "request"
        field = names.get(loc, loc)
        ctx = err.get("ctx") or {}
        kind = err["type"]
        if kind == "greater_than_equal":
            parts.append(f"{field} must be at least {ctx.get('ge')}")
        elif kind == "less_than_equal":
            parts.append(f"{field} must be at most {ctx.get('le')}")
        elif kind == "string_too_short":
            parts.append(f"{field} must not be empty")
        elif kind == "string_too_long":
            parts.append(f"{field} must be at most {ctx.get('max_length')} characters")
        elif kind == "extra_forbidden":
            parts.append(f"unknown field '{loc}'")
        elif kind == "missing":
            parts.append(f"{field} is required")
        else:
            parts.append(f"{field}: {err['msg']}")
    return "; ".join(parts)


def parse_campaign_request(data: dict[str, object]) -> CampaignRequest:
    try:
        return CampaignRequest.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        raise InvalidInput(validation_message(errors), details=errors) from None


@dataclass(frozen=True, slots=True)
class Notify:
    """Where a campaign's webhook goes, and the secret its body is signed with."""

    url: str
    secret: str


# What a job's config cannot run without; the rest has the request's defaults.
_REQUIRED = ("tags", "area", "max_results", "min_score", "business_type")


@dataclass(frozen=True, slots=True)
class CampaignConfig:
    """A campaign as its job runs it: the request with its type and location resolved.

    Built once at submit and stored as ``job.config`` (``to_dict``); the
    stages read it back with ``from_dict`` and use the attributes.
    """

    business_type: str  # the canonical type name
    business_type_label: str
    tags: tuple[str, ...]  # its OpenStreetMap tags
    location: str  # as the user typed it
    area: Area  # as it resolved
    max_results: int
    budget_limit: Decimal
    min_score: int
    tier: Tier
    include_delivered: bool
    notify: Notify | None = None
    sources: tuple[str, ...] | None = None  # as asked (domain.tiers.parse_sources); None: all the tier allows

    def to_dict(self) -> dict[str, Any]:
        """The JSON stored in ``discovery_jobs.config`` (and shown, without the secret, as the job's config)."""
        data: dict[str, Any] = {
            "business_type": self.business_type,
            "business_type_label": self.business_type_label,
            "tags": list(self.tags),
            "location": self.location,
            "area": self.area.to_dict(),
            "max_results": self.max_results,
            "budget_limit": str(self.budget_limit),
            "min_score": self.min_score,
            "tier": self.tier.value,
            "include_delivered": self.include_delivered,
        }
        if self.sources is not None:
            data["sources"] = list(self.sources)
        if self.notify is not None:
            data["notify"] = {"url": self.notify.url, "secret": self.notify.secret}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CampaignConfig:
        missing = [key for key in _REQUIRED if key not in data]
        if missing:
            raise ValueError(f"job config lacks {', '.join(missing)}")
        notify = data.get("notify")
        area = Area.from_dict(data["area"])
        return cls(
            business_type=str(data["business_type"]),
            business_type_label=str(data.get("business_type_label") or data["business_type"]),
            tags=tuple(data["tags"]),
            location=str(data.get("location") or area.label),
            area=area,
            max_results=int(data["max_results"]),
            budget_limit=Decimal(str(data.get("budget_limit", "5"))),
            min_score=int(data["min_score"]),
            tier=Tier(data.get("tier", Tier.base.value)),
            include_delivered=bool(data.get("include_delivered", False)),
            notify=Notify(url=str(notify["url"]), secret=str(notify["secret"])) if notify else None,
            sources=tuple(data["sources"]) if data.get("sources") is not None else None,
        )
