"""The tiers table and the shared source names (domain/tiers.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from prospectpro.domain.campaign import Tier
from prospectpro.domain.tiers import PAID_SOURCES, TIERS, choose_sources, money_text, parse_sources, tier_rule
from prospectpro.errors import InvalidInput


def test_base_uses_free_sources_only_and_never_spends() -> None:
    base = TIERS[Tier.base]
    assert not base.paid and not set(base.sources) & PAID_SOURCES and base.lead_cap == 0
    assert TIERS[Tier.professional].paid and "google" in TIERS[Tier.professional].sources


def test_lead_caps_are_overridable_but_not_for_base() -> None:
    caps = {"professional": Decimal("0.05"), "base": Decimal("1")}
    assert tier_rule(Tier.professional, caps).lead_cap == Decimal("0.05")
    assert tier_rule(Tier.enterprise, caps).lead_cap == TIERS[Tier.enterprise].lead_cap
    assert tier_rule(Tier.base, caps).lead_cap == 0


@pytest.mark.parametrize(
    ("given", "parsed"),
    [
        (None, None),
        ("", None),
        ("osm", ("osm",)),
        (" OSM , google,osm ", ("osm", "google")),
        (["google", "osm"], ("google", "osm")),
        ([], None),
    ],
)
def test_parse_sources(given: object, parsed: tuple[str, ...] | None) -> None:
    assert parse_sources(given) == parsed  # type: ignore[arg-type]


def test_an_unknown_source_is_named() -> None:
    with pytest.raises(InvalidInput, match="unknown source yelp; the sources are osm, google"):
        parse_sources("osm,yelp")


def test_choose_sources() -> None:
    both = {"osm", "google"}
    assert choose_sources(Tier.base, None, both) == ("osm",)  # base never takes google, configured or not
    assert choose_sources(Tier.professional, None, both) == ("osm", "google")
    assert choose_sources(Tier.professional, None, {"osm"}) == ("osm",)
    assert choose_sources(Tier.professional, ("google",), both) == ("google",)
    with pytest.raises(InvalidInput, match="the base tier does not use google; paid sources need"):
        choose_sources(Tier.base, ("google",), both)
    with pytest.raises(InvalidInput, match="google is not configured"):
        choose_sources(Tier.professional, ("google",), {"osm"})


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Decimal("0"), "0"),
        (Decimal("0.0000"), "0"),
        (Decimal("0.1050"), "0.105"),
        (Decimal("100"), "100"),
        (Decimal("12.50"), "12.5"),
        (Decimal("0.035") * 3, "0.105"),
        ("0.00175", "0.00175"),
        (0, "0"),
    ],
)
def test_money_text_is_a_plain_decimal_string(amount: Decimal | str | int, text: str) -> None:
    assert money_text(amount) == text
