"""What each paid request costs: the one price table, USD per request, at list price.

List price, first volume band. The monthly free allowance belongs to the
user's whole Google account (other apps may use it), so it is not ours to
count: every request is priced as if it were billed.

Overridable per key by configuration (``PROSPECTPRO_PRICES`` /
``settings.prices``, e.g. ``{"google.text_search_enterprise": "0.032"}``),
for a negotiated price or a price change before this table is updated.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

PRICES_DATE = "2026-04-13"
PRICES_SOURCE = "https://developers.google.com/maps/billing-and-pricing/pricing"

_PER_1000 = Decimal(1000)

# Key: "{provider}.{sku}". Google bills a request at the highest SKU any field
# of its field mask triggers (external-apis.md §1, "SKU by field mask").
PRICES: Mapping[str, Decimal] = {
    "google.text_search_essentials": Decimal("0") / _PER_1000,
    "google.text_search_pro": Decimal("32.00") / _PER_1000,
    "google.text_search_enterprise": Decimal("35.00") / _PER_1000,
    "google.text_search_enterprise_atmosphere": Decimal("40.00") / _PER_1000,
    "google.place_details_essentials": Decimal("5.00") / _PER_1000,
    "google.place_details_pro": Decimal("17.00") / _PER_1000,
    "google.place_details_enterprise": Decimal("20.00") / _PER_1000,
    "google.place_details_enterprise_atmosphere": Decimal("25.00") / _PER_1000,
    # Hunter.io (https://hunter.io/pricing, 2026-12-02; external-apis.md §2): Starter, $49 a month for 2,000
    # credits. Domain Search is charged 1 credit per 1-10 addresses returned, nothing when none; the verifier
    # 0.5 credit. The plan is the user's: override "hunter.credit" with what theirs costs per credit.
    "hunter.credit": Decimal("49.00") / 2000,
    # NeverBounce (https://www.neverbounce.com/help/how-does-pricing-and-billing-work, updated 2024-03-28):
    # pay-as-you-go $0.008 a verification, single or bulk, duplicates included.
    "neverbounce.verification": Decimal("0.008"),
}


def price(key: str, overrides: Mapping[str, Decimal | str | float] | None = None) -> Decimal:
    """USD per request of ``key`` ("google.text_search_enterprise"): the override if configured, else the table's."""
    override = (overrides or {}).get(key)
    if override is not None:
        value = Decimal(str(override))
        if value < 0:
            raise ValueError(f"price {key} must not be negative, got {value}")
        return value
    try:
        return PRICES[key]
    except KeyError:
        raise KeyError(f"no price for {key}; known: {', '.join(sorted(PRICES))}") from None
