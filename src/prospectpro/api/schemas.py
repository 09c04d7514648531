"""The API's wire models: what /openapi.json promises and schemathesis checks."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from prospectpro.domain.campaign import MAX_RESULTS_LIMIT, CampaignRequest, Tier, parse_campaign_request
from prospectpro.domain.text import CleanStr


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorOut(BaseModel):
    error: ErrorBody
    success: bool | None = None  # present on the compatibility endpoint


ERRORS = {
    status: {"model": ErrorOut, "description": description}
    for status, description in {
        400: "Malformed request",
        401: "Invalid or revoked credentials",
        403: "Forbidden: a cookie-authenticated change from another origin, or an operator endpoint",
        404: "Not found (also: not yours)",
        409: "Conflict",
        413: "Request body too large",
        415: "Unsupported media type",
        422: "Invalid input",
        429: "Too many requests",
        503: "The database is unavailable; retry after Retry-After seconds",
    }.items()
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: ERRORS[status] for status in statuses}


class CampaignIn(BaseModel):
    """The /api/v1 request body. Its clients send JSON, so its types are strict: `"5"` or `true` is
    not a number and `0` is not a boolean. (The web form and the compatibility endpoint stay lenient.)"""

    model_config = ConfigDict(extra="forbid")

    business_type: CleanStr = Field(min_length=1, max_length=100, examples=["cafe"])
    location: CleanStr = Field(min_length=1, max_length=200, examples=["Helsinki"])
    max_results: StrictInt = Field(default=20, ge=1, le=MAX_RESULTS_LIMIT)
    # A JSON number, or a string for an exact amount ("12.50").
    budget_limit: Decimal = Field(default=Decimal("5"), ge=0, le=100000, decimal_places=4)
    min_confidence_score: StrictInt = Field(default=50, ge=0, le=100)
    tier: Tier = Tier.base
    include_delivered: StrictBool = False
    notify_url: CleanStr | None = Field(default=None, max_length=2000)
    sources: list[CleanStr] | None = Field(
        default=None,
        max_length=6,
        description="Restrict the campaign to these sources (osm, google, overture, website, hunter, neverbounce); "
        "null: every source the tier allows and this installation has configured",
        examples=[["osm", "google"]],
    )

    def to_request(self) -> CampaignRequest:
        return parse_campaign_request(
            {
                "business_type": self.business_type,
                "location": self.location,
                "max_results": self.max_results,
                "budget_limit": self.budget_limit,
                "min_score": self.min_confidence_score,
                "tier": self.tier,
                "include_delivered": self.include_delivered,
                "sources": self.sources,
            }
        )


class QuoteOut(BaseModel):
    """What a campaign would use and spend (POST /api/v1/campaigns/quote); money as decimal strings."""

    sources: list[str] = Field(description="The sources the campaign would use")
    max_cost: str = Field(description="An upper bound of what the run can spend, USD", examples=["0.105"])
    estimated_cost: str = Field(description="What it usually spends, USD", examples=["0.035"])
    within_budget: bool = Field(description="False when the budget may stop the run's paid calls before it is done")
    notes: list[str] = Field(description="Plain sentences: what each paid source may cost, what limits it")


class Links(BaseModel):
    job: str
    events: str
    leads: str
    leads_csv: str
    page: str


class SubmitOut(BaseModel):
    job_id: str
    campaign_id: str
    status: str
    urls: Links
    created: bool
    session_token: str | None = None
    notify_secret: str | None = None


class JobOut(BaseModel):
    id: str
    job_id: str
    kind: str = Field(description="What the job does: campaign (the only kind a caller submits, so far)")
    campaign_id: str | None = Field(description="The campaign a campaign job runs; null for other kinds")
    status: str
    progress: int
    current_stage: str
    stage_label: str
    event_seq: int
    metrics: dict[str, Any]
    config: dict[str, Any]
    error: str | None
    attempts: int
    max_attempts: int
    cancel_requested: bool
    created_at: str | None
    started_at: str | None
    completed_at: str | None
    updated_at: str | None


class JobPage(BaseModel):
    jobs: list[JobOut]
    total: int
    limit: int
    offset: int


class EventOut(BaseModel):
    seq: int = Field(description="Gap-free position in the job's log, from 1")
    kind: str = Field(
        description="What happened: created, claimed, stage_started, lead_enriched, stage_completed, "
        "retry_scheduled, cancel_requested, taken_over, released; the last is completed, failed or cancelled"
    )
    data: dict[str, Any] = Field(description="The job's state after it: status, progress, current_stage, metrics, …")
    created_at: str | None


class EventPage(BaseModel):
    events: list[EventOut]
    next_after: int


def _json_text(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {"$ref": f"#/components/schemas/{model.__name__}"},
    }


# GET /api/v1/jobs/{id}/events as a stream: one item per event, as OpenAPI 3.2's itemSchema
# describes Server-Sent Events ({data, event, id, retry}; `event` is "message" when the line is absent).
EVENT_STREAM = {
    "itemSchema": {
        "oneOf": [
            {
                "title": "snapshot",
                "description": "First, once: `event: snapshot`, the job as it is now, and the reconnection delay",
                "type": "object",
                "required": ["event", "data"],
                "properties": {
                    "event": {"const": "snapshot"},
                    "data": _json_text(JobOut),
                    "retry": {"type": "integer", "minimum": 0},
                },
            },
            {
                "title": "job event",
                "description": "Then every event of the job's log after the resume position, in order; "
                "the stream ends after the terminal one (completed, failed or cancelled)",
                "type": "object",
                "required": ["event", "id", "data"],
                "properties": {
                    "event": {"const": "message"},
                    "id": {
                        "type": "string",
                        "pattern": "^[0-9]+$",
                        "description": "The event's seq: what an EventSource sends back as Last-Event-ID",
                    },
                    "data": _json_text(EventOut),
                },
            },
        ]
    }
}


class CampaignOut(BaseModel):
    id: str
    job_id: str | None
    business_type: str
    location: str
    max_results: int
    budget_limit: str
    min_score: int
    tier: str
    include_delivered: bool
    status: str
    results_count: int
    total_cost: str
    created_at: str | None
    updated_at: str | None
    completed_at: str | None


class LeadOut(BaseModel):
    id: int
    business_name: str
    address: str | None
    phone: str | None
    website: str | None
    email: str | None
    email_status: str | None
    confidence_score: int
    score_breakdown: dict[str, int]
    sources: list[str]
    category: str | None
    latitude: float | None
    longitude: float | None
    cost: str
    rating: float | None = None  # when a source gives one (Google)
    review_count: int | None = None
    field_sources: dict[str, Any] | None = None  # {field: {source, fetched_at}}
    google_expires_at: str | None = None  # when the Google-only values are cleared (Google's content terms)
    email_source: str | None = None  # "website:https://…/contact", "hunter", "osm"
    email_confidence: int | None = None  # 0-100 (Hunter's)
    # Every address, phone and social link found with its source; the steps run and skipped, and why.
    enrichment: dict[str, Any] | None = None


class SuppressIn(BaseModel):
    value: str = Field(
        max_length=300,
        # ASCII blanks and controls only: other whitespace is read differently by JSON Schema's and Rust's \s.
        pattern=r"^([^ @\x00-\x1f]+@[^ @\x00-\x1f]+|[^ @/.\x00-\x1f][^ @/\x00-\x1f]*\.[^ @/\x00-\x1f]*[^ @/.\x00-\x1f])$",
        description="An e-mail address, or a domain (all its addresses)",
    )


class SuppressOut(BaseModel):
    suppressed: str


class ForgetIn(BaseModel):
    email: str = Field(max_length=300, pattern=r"^[^ @\x00-\x1f]+@[^ @\x00-\x1f]+$")


class ForgetOut(BaseModel):
    email: str
    leads: int = Field(description="Your leads the address was removed from")
    cached_answers: int = Field(description="Your cached provider answers it was removed from")
    suppressed: bool


class LeadPage(BaseModel):
    leads: list[LeadOut]
    total: int
    limit: int
    offset: int


class CompatIn(BaseModel):
    """The original product's request body (camelCase, its defaults). Lenient types, as before:
    its clients send numbers as strings."""

    model_config = ConfigDict(extra="ignore")

    businessType: CleanStr = Field(min_length=1, max_length=100)
    location: CleanStr = Field(min_length=1, max_length=200)
    maxResults: int = Field(default=5, ge=1, le=MAX_RESULTS_LIMIT)
    budgetLimit: Decimal = Field(default=Decimal("50"), ge=0, le=100000, decimal_places=4)
    minConfidenceScore: int = Field(default=50, ge=0, le=100)
    sessionUserId: CleanStr | None = Field(default=None, max_length=200)
    userEmail: CleanStr | None = Field(default=None, max_length=320)

    def to_request(self) -> CampaignRequest:
        return parse_campaign_request(
            {
                "business_type": self.businessType,
                "location": self.location,
                "max_results": self.maxResults,
                "budget_limit": self.budgetLimit,
                "min_score": self.minConfidenceScore,
                "tier": Tier.base,
            }
        )


class CompatOut(BaseModel):
    success: bool
    message: str
    jobId: str
    campaignId: str
    status: str
    estimatedTime: str
    realtimeChannel: str
    sessionToken: str | None = None


class Health(BaseModel):
    """The detailed answer, for the operator (see GET /healthz)."""

    status: str
    database: str
    schema_current: bool
    workers_alive: int
    queue_depth: int
    writer: str | None = Field(default=None, description="Present when a writer holds the write lock too long")


class PublicHealth(BaseModel):
    """The answer for everyone else: whether the service is ok, and nothing about its tenants."""

    status: str = Field(examples=["ok"], description="ok, degraded or unavailable")
