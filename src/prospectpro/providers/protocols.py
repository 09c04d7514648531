"""The small protocols every external source implements.

Discovery finds businesses; enrichment adds contact data to one business.
Paid providers (Google Places, Hunter.io, NeverBounce) implement the same
protocols, make their calls through the context's gate and add their cost
to ``Enrichment.cost``.

Every call gets a ``CallContext``: whose job it is, the tier, how many
results are still wanted and the budget, so a paid source can stop paging,
check the budget or find an earlier answer; and the ``Gate`` each provider
call goes through.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Protocol

import httpx

from prospectpro.domain.area import Area
from prospectpro.domain.business import Business
from prospectpro.domain.campaign import Tier
from prospectpro.gate.types import Answer, GateRequest


class Gate(Protocol):
    """What every call to a provider goes through (``prospectpro.gate``).

    ``call`` is the ledger layer: the request is looked up, reserved against
    the budget (``OverBudget`` when it would cross it: the call is not made),
    made by ``fn`` (which returns the answer body, JSON-able) and settled.
    ``http`` is the transport layer: the provider's shared HTTP client, with
    its limits, retries and breaker, raising ``ProviderError``.
    """

    def call(self, ctx: CallContext, request: GateRequest, fn: Callable[[], Any]) -> Answer: ...

    def http(self, provider: str) -> ProviderClient: ...


class ProviderClient(Protocol):
    """One provider's HTTP client: ``path`` is appended to its base URL; answers only when the provider said ok."""

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response: ...


@dataclass(frozen=True, slots=True)
class PassThroughGate:
    """Makes every call as asked: nothing is recorded, no budget enforced, no HTTP client.

    For tests of free, local sources; the product runs ``prospectpro.gate.core.Gate``.
    """

    def call(self, ctx: CallContext, request: GateRequest, fn: Callable[[], Any]) -> Answer:
        return Answer(body=fn(), cost=Decimal("0"), reused=False)

    def http(self, provider: str) -> ProviderClient:
        raise LookupError(f"no HTTP client for {provider}: the pass-through gate makes no external calls")


PASS_THROUGH = PassThroughGate()


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who a provider call is for, and how much of it is still needed."""

    job_id: str
    owner_id: str
    tier: Tier
    wanted: int  # the remaining need: results still wanted (discovery) or leads still to enrich
    budget_limit: Decimal
    gate: Gate = PASS_THROUGH
    campaign_id: str | None = None
    lease_token: int | None = None  # the job's fencing token: a worker that lost its lease cannot spend

    def with_wanted(self, wanted: int) -> CallContext:
        return replace(self, wanted=wanted)


@dataclass(frozen=True, slots=True)
class DiscoveryQuery:
    tags: tuple[str, ...]  # OpenStreetMap tags of the business type, e.g. ("amenity=cafe",)
    type_name: str  # the canonical business type, e.g. "cafe"
    area: Area
    wanted: int  # the number of results the campaign wants (a source may return more: see OsmPlacesSource)


@dataclass(frozen=True, slots=True)
class SourceQuote:
    """What a paid source may spend on a campaign: the quote's parts (services/quote.py).

    ``max_cost`` is a hard upper bound (the source never makes more than
    ``max_requests`` paid requests for this query); ``estimated_cost`` what it
    usually spends.
    """

    source: str
    max_requests: int
    max_cost: Decimal
    estimated_cost: Decimal
    note: str = ""


class DiscoverySource(Protocol):
    """A source of businesses. Paid ones also have ``paid = True`` and ``quote(query) -> SourceQuote``."""

    name: str

    def discover(self, query: DiscoveryQuery, ctx: CallContext) -> Sequence[Business]: ...


@dataclass(frozen=True, slots=True)
class Enrichment:
    """What enrichment learned about one business, with where every value came from.

    ``email`` is the chosen address; ``emails`` every address found
    ({address, source, kind: role|personal, on_domain, confidence?, name?,
    position?}), ``phones`` ({number, source}) and ``socials`` ({url,
    source}) likewise. ``steps`` says what ran and what was skipped, and why
    ({provider, outcome, reason?, cost?}). ``email_status`` is one of
    valid | invalid | accept_all | disposable | unknown | unverified when an
    address is chosen (never a default "valid"); ``verification`` says who
    verified it and when.
    """

    email: str | None = None
    email_source: str | None = None  # "osm", "website:https://…/contact", "hunter" …
    email_status: str | None = None  # valid | invalid | accept_all | disposable | unknown | unverified
    cost: Decimal = Decimal("0")
    steps: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    email_confidence: int | None = None  # 0-100: Hunter's confidence; 100 for an address the business published
    email_on_domain: bool = False  # on the business's own (registrable) domain
    emails: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    phones: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    socials: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    contact_person: dict[str, Any] | None = None  # enterprise: a named decision-maker {name, position, email, source}
    verification: dict[str, Any] | None = None  # {by, result, on}

    def with_step(self, provider: str, outcome: str, **extra: Any) -> Enrichment:
        return replace(self, steps=(*self.steps, {"provider": provider, "outcome": outcome, **extra}))

    def ran(self, provider: str) -> bool:
        return any(s.get("provider") == provider and s.get("outcome") != "skipped" for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "email_source": self.email_source,
            "email_status": self.email_status,
            "email_confidence": self.email_confidence,
            "email_on_domain": self.email_on_domain,
            "cost": str(self.cost),
            "steps": list(self.steps),
            "emails": list(self.emails),
            "phones": list(self.phones),
            "socials": list(self.socials),
            "contact_person": self.contact_person,
            "verification": self.verification,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Enrichment:
        confidence = data.get("email_confidence")
        return cls(
            email=data.get("email"),
            email_source=data.get("email_source"),
            email_status=data.get("email_status"),
            cost=Decimal(str(data.get("cost", "0"))),
            steps=tuple(data.get("steps") or ()),
            email_confidence=int(confidence) if confidence is not None else None,
            email_on_domain=bool(data.get("email_on_domain")),
            emails=tuple(data.get("emails") or ()),
            phones=tuple(data.get("phones") or ()),
            socials=tuple(data.get("socials") or ()),
            contact_person=data.get("contact_person"),
            verification=data.get("verification"),
        )


class Enricher(Protocol):
    name: str

    def enrich(self, business: Business, found: Enrichment, ctx: CallContext) -> Enrichment:
        """Return ``found`` plus what this step learned (or ``found`` unchanged)."""
        ...
