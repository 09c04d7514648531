"""Which sources a campaign may use, and what each tier may spend: one table.

The shared source names are the same words everywhere: ``--sources``, the
API's ``sources`` field, the ledger's ``provider``, metrics, ``prospectpro
providers`` and page labels. ``base`` uses free sources only and never spends
money, whatever the budget says; the paid sources need a tier that allows
them (and their key configured).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from prospectpro.domain.campaign import Tier
from prospectpro.errors import InvalidInput

# Discovery sources and contact steps, in the order a campaign runs them.
DISCOVERY_SOURCES = ("osm", "overture", "google")
CONTACT_SOURCES = ("website", "hunter", "neverbounce")
SOURCE_NAMES = ("osm", "google", "overture", "website", "hunter", "neverbounce")
PAID_SOURCES = frozenset({"google", "hunter", "neverbounce"})


@dataclass(frozen=True, slots=True)
class TierRule:
    tier: Tier
    sources: tuple[str, ...]  # the sources (discovery and contacts) this tier may use
    lead_cap: Decimal  # the most a lead's contact steps may spend, USD
    personal_emails: bool  # keep addresses that name a person (enterprise only)

    @property
    def paid(self) -> bool:
        return any(s in PAID_SOURCES for s in self.sources)


TIERS: Mapping[Tier, TierRule] = {
    Tier.base: TierRule(Tier.base, ("osm", "overture", "website"), Decimal("0"), personal_emails=False),
    Tier.professional: TierRule(
        Tier.professional, ("osm", "overture", "google", "website", "hunter", "neverbounce"), Decimal("0.10"), False
    ),
    Tier.enterprise: TierRule(
        Tier.enterprise, ("osm", "overture", "google", "website", "hunter", "neverbounce"), Decimal("0.25"), True
    ),
}


def money_text(value: Decimal | int | str) -> str:
    """Money as JSON carries it: a plain decimal string without trailing zeros ("0.035", "0", "12.5")."""
    text = f"{Decimal(str(value)).normalize():f}"
    return "0" if text in ("-0", "0") else text


def tier_rule(tier: Tier, lead_caps: Mapping[str, Decimal] | None = None) -> TierRule:
    """The tier's rule, with its per-lead cap overridden by configuration (settings.tier_lead_caps)."""
    rule = TIERS[tier]
    cap = (lead_caps or {}).get(tier.value)
    if cap is None or rule.tier == Tier.base:  # base never spends, whatever the configuration
        return rule
    return replace(rule, lead_cap=Decimal(str(cap)))


def parse_sources(value: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """"osm,google" or ["osm", "google"] → ("osm", "google"); None or empty: every source the tier allows."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(dict.fromkeys(str(item).strip().lower() for item in items if str(item).strip()))
    unknown = [n for n in names if n not in SOURCE_NAMES]
    if unknown:
        raise InvalidInput(f"unknown source {', '.join(unknown)}; the sources are {', '.join(SOURCE_NAMES)}")
    return names or None


def choose_sources(tier: Tier, requested: Sequence[str] | None, available: Iterable[str]) -> tuple[str, ...]:
    """The sources a campaign uses: those asked for (or all), that the tier allows and that are configured.

    A source named explicitly that the tier does not allow is an error (the
    user asked for something they would not get); one that is not configured
    (no API key) likewise.
    """
    rule = TIERS[tier]
    configured = set(available)
    if requested is None:
        return tuple(s for s in SOURCE_NAMES if s in rule.sources and s in configured)
    refused = [s for s in requested if s not in rule.sources]
    if refused:
        raise InvalidInput(
            f"the {tier.value} tier does not use {', '.join(refused)}"
            + ("; paid sources need the professional or enterprise tier" if set(refused) & PAID_SOURCES else "")
        )
    if not any(s in DISCOVERY_SOURCES for s in requested):
        raise InvalidInput(
            f"name at least one discovery source ({', '.join(DISCOVERY_SOURCES)}): the sources you name are all "
            "the campaign uses"
        )
    missing = [s for s in requested if s not in configured]
    if missing:
        raise InvalidInput(f"{', '.join(missing)} is not configured on this installation")
    return tuple(s for s in SOURCE_NAMES if s in requested)
