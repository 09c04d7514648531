"""What a user asks for, and the stages a campaign goes through."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from prospectpro.domain.text import NO_CONTROL_CHARACTERS
from prospectpro.errors import InvalidInput

MAX_RESULTS_LIMIT = 10_000


class Tier(StrEnum):
    """What enrichment may use: base is free sources only."""

    base = "base"
    professional = "professional"
    enterprise = "enterprise"


class JobStatus(StrEnum):
    pending = "pending"
    processing = "processing"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.completed, JobStatus.failed, JobStatus.cancelled})


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


_FIELD_NAMES = {
    "business_type": "business type",
    "location": "location",
    "max_results": "max results",
    "budget_limit": "budget",
    "min_score": "minimum score",
    "tier": "tier",
    "include_delivered": "include delivered",
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
