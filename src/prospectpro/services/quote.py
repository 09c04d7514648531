"""What a campaign may spend, before it runs: the quote, and the checks every submission passes.

``plan_campaign`` is the one place that decides, for a prepared campaign,
which sources it uses (its tier's, narrowed to those asked for and those this
installation has configured) and refuses what cannot run as asked: a paid
tier for an anonymous session (unless ``PROSPECTPRO_ANONYMOUS_PAID``), an
unknown source, a paid source the tier does not allow or that is not
configured, and a paid source named explicitly whose one request the budget
(or the owner's remaining monthly budget) cannot pay. The quote and the
submit path both call it, so what a quote accepts can be submitted.

``quote`` adds the money: ``max_cost`` is an upper bound of what the run can
spend. Each paid discovery source reports a ``SourceQuote`` whose
``max_requests`` it never exceeds; the contact steps are bound by the tier's
per-lead cap times the leads asked for; and the gate never lets a campaign
cross its budget or its owner's monthly budget, so the bound is capped by
those too. ``base`` uses free sources only: its quote is 0, whatever the
budget says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from prospectpro.config import Settings
from prospectpro.domain.campaign import CampaignRequest, Tier
from prospectpro.domain.clock import utcnow
from prospectpro.domain.tiers import CONTACT_SOURCES, PAID_SOURCES, choose_sources, money_text, parse_sources, tier_rule
from prospectpro.errors import Forbidden, InvalidInput
from prospectpro.pipeline.runner import build_pipeline, configured_sources
from prospectpro.providers.protocols import DiscoveryQuery, SourceQuote
from prospectpro.services.campaigns import PreparedCampaign, prepare_campaign
from prospectpro.store.db import Database
from prospectpro.store.ledger import owner_month_spent, owner_monthly_budget
from prospectpro.store.schema import users

ZERO = Decimal("0")

# What a source is called in sentences (notes, errors); the shared names elsewhere.
SOURCE_LABELS = {
    "osm": "OpenStreetMap",
    "google": "Google Places",
    "overture": "Overture",
    "website": "the business's website",
    "hunter": "Hunter.io",
    "neverbounce": "NeverBounce",
}


def dollars(amount: Decimal) -> str:
    """$0.035, $5.00: cents always, more digits only when the amount has them."""
    text = money_text(amount)
    whole, _, cents = text.partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"


@dataclass(frozen=True)
class Limit:
    """The most the campaign may spend: its budget, or less when its owner's monthly budget has less left."""

    amount: Decimal
    name: str  # "budget" | "monthly budget"
    monthly_left: Decimal | None = None  # None: the owner has no monthly budget


@dataclass(frozen=True)
class Plan:
    """The sources a campaign uses and what its paid ones may cost (no money: an empty ``quotes``)."""

    sources: tuple[str, ...]
    quotes: tuple[SourceQuote, ...] = ()  # the paid discovery sources' parts
    contact_bound: Decimal = ZERO  # the paid contact steps' bound (tier lead cap × leads asked for)
    limit: Limit | None = None  # looked up only when something may cost money

    @property
    def needed(self) -> Decimal:
        """The most the run could spend if nothing limited it."""
        return sum((q.max_cost for q in self.quotes), ZERO) + self.contact_bound


@dataclass(frozen=True)
class Quote:
    sources: tuple[str, ...]
    max_cost: Decimal
    estimated_cost: Decimal
    within_budget: bool
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """As JSON carries it: money as decimal strings."""
        return {
            "sources": list(self.sources),
            "max_cost": money_text(self.max_cost),
            "estimated_cost": money_text(self.estimated_cost),
            "within_budget": self.within_budget,
            "notes": list(self.notes),
        }

    def sentence(self) -> str:
        """What the CLI prints: one sentence with dollar amounts, then the notes."""
        names = list(self.sources)
        used = (", ".join(names[:-1]) + " and " + names[-1] + ",") if len(names) > 1 else (names[0] if names else "none")
        if self.max_cost == 0:
            head = f"This campaign would use {used} and cost nothing ($0.00)."
        else:
            head = (
                f"This campaign would use {used} and cost at most {dollars(self.max_cost)} "
                f"(about {dollars(self.estimated_cost)})"
                + (", within its budget." if self.within_budget else "; its budget may stop it before it finds all.")
            )
        return " ".join((head, *self.notes))


def is_anonymous(db: Database, owner_id: str | None) -> bool:
    """Whether the owner is an anonymous session (a new one, None, is)."""
    if owner_id is None:
        return True
    with db.read() as conn:
        kind = conn.execute(select(users.c.kind).where(users.c.id == owner_id)).scalar_one_or_none()
    return kind == "anonymous"


def spending_limit(db: Database, owner_id: str | None, budget: Decimal) -> Limit:
    """The campaign's budget, capped by what the owner's monthly budget has left (UTC calendar month)."""
    if owner_id is None:
        return Limit(budget, "budget")
    with db.read() as conn:
        monthly = owner_monthly_budget(conn, owner_id)
        if monthly is None:
            return Limit(budget, "budget")
        spent = owner_month_spent(conn, owner_id, utcnow())
    left = max(ZERO, monthly - spent)
    if left < budget:
        return Limit(left, "monthly budget", monthly_left=left)
    return Limit(budget, "budget", monthly_left=left)


def source_quotes(db: Database, settings: Settings, prepared: PreparedCampaign, sources: tuple[str, ...]) -> list[SourceQuote]:
    """Each paid discovery source's own quote for this campaign (the sources the worker's pipeline runs)."""
    query = DiscoveryQuery(
        tags=tuple(prepared.business_type.tags),
        type_name=prepared.business_type.name,
        area=prepared.area,
        wanted=prepared.request.max_results,
    )
    quotes = []
    for source in build_pipeline(db, settings).sources:
        quote_of = getattr(source, "quote", None)
        if source.name in sources and source.name in PAID_SOURCES and callable(quote_of):
            quotes.append(quote_of(query))
    return quotes


def plan_campaign(
    db: Database,
    settings: Settings,
    owner_id: str | None,
    prepared: PreparedCampaign,
    *,
    anonymous: bool | None = None,
) -> Plan:
    """The sources the campaign uses, or the UserError that refuses it (see the module's doc).

    ``anonymous``: whether the owner is an anonymous session, when the caller
    knows; None looks it up (only for a paid tier).
    """
    request = prepared.request
    paid_tier = request.tier != Tier.base and not settings.anonymous_paid
    if paid_tier and (anonymous if anonymous is not None else is_anonymous(db, owner_id)):
        raise Forbidden(
            f"anonymous sessions use the base tier (free sources) only, not {request.tier.value}: "
            "use an API key (`prospectpro users create NAME`), or the operator sets PROSPECTPRO_ANONYMOUS_PAID=true"
        )
    asked = parse_sources(request.sources)
    sources = choose_sources(request.tier, asked, configured_sources(settings))
    if not any(s in PAID_SOURCES for s in sources):
        return Plan(sources)
    quotes = tuple(source_quotes(db, settings, prepared, sources))
    paid_contacts = [s for s in sources if s in CONTACT_SOURCES and s in PAID_SOURCES]
    bound = tier_rule(request.tier, settings.tier_lead_caps).lead_cap * request.max_results if paid_contacts else ZERO
    limit = spending_limit(db, owner_id, request.budget_limit)
    for q in quotes:
        if asked is None or q.source not in asked or q.max_requests <= 0:
            continue
        one = q.max_cost / q.max_requests
        if one > limit.amount:
            raise InvalidInput(
                f"{q.source} was asked for, but one {SOURCE_LABELS.get(q.source, q.source)} request costs "
                f"{dollars(one)} and the campaign's {limit.name} allows {dollars(limit.amount)}: "
                f"raise the budget or leave {q.source} out"
            )
    return Plan(sources, quotes, bound, limit)


def quote_plan(request: CampaignRequest, plan: Plan) -> Quote:
    """The quote of a planned campaign."""
    if plan.limit is None:  # nothing it uses can cost money
        note = (
            "The base tier uses free sources only: it never spends money, whatever the budget."
            if request.tier == Tier.base
            else "None of the sources this campaign uses costs money."
        )
        return Quote(plan.sources, ZERO, ZERO, True, (note,))
    limit = plan.limit
    needed = plan.needed
    max_cost = min(limit.amount, needed)
    estimated = min(max_cost, sum((q.estimated_cost for q in plan.quotes), ZERO))
    notes = [q.note or _source_note(q) for q in plan.quotes]
    if plan.contact_bound:
        notes.append(
            f"Contact steps: at most {dollars(plan.contact_bound / request.max_results)} per lead "
            f"for {request.max_results} leads."
        )
    within = needed <= limit.amount
    if limit.name == "monthly budget":
        notes.append(f"Your monthly budget has {dollars(limit.amount)} left this month, less than the campaign's budget.")
    if not within:
        notes.append(
            f"Its {limit.name} of {dollars(limit.amount)} is less than the {dollars(needed)} the run could spend: "
            "it stops making paid calls there and may find fewer leads than asked."
        )
    return Quote(plan.sources, max_cost, estimated, within, tuple(notes))


def _source_note(q: SourceQuote) -> str:
    label = SOURCE_LABELS.get(q.source, q.source)
    if q.max_requests <= 0:
        return f"{label}: no paid requests."
    each = q.max_cost / q.max_requests
    return f"{label}: at most {q.max_requests} request{'s' if q.max_requests != 1 else ''} at {dollars(each)}."


def quote(
    db: Database, settings: Settings, owner_id: str | None, request: CampaignRequest, *, anonymous: bool | None = None
) -> Quote:
    """What the campaign would use and spend; enqueues nothing, writes nothing."""
    prepared = prepare_campaign(db, request, settings=settings)  # settings: a geocoded place is read from the cache
    return quote_plan(request, plan_campaign(db, settings, owner_id, prepared, anonymous=anonymous))
