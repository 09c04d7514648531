"""How complete and reachable a lead is, as a 0–100 score with its parts kept.

The breakdown is stored with each lead so a user can see why it scored what it did
("address 10/25"), and so a change of weights never needs old records re-fetched.
"""

from __future__ import annotations

from dataclasses import dataclass

from prospectpro.domain.business import Business
from prospectpro.domain.normalize import (
    is_social_or_generic_host,
    normalize_email,
    phone_e164,
    website_domain,
)

MAX_SCORE = 100

# Component → maximum points, in display order.
SCORE_COMPONENTS: dict[str, int] = {
    "name": 10,
    "address": 25,
    "phone": 20,
    "website": 20,
    "email": 15,
    "email_verified": 10,
}
assert sum(SCORE_COMPONENTS.values()) == MAX_SCORE

# A full address is one a letter or a visit can use; any part of one still helps locate it.
_PARTIAL_ADDRESS = 10
# A social page reaches the business but says less than its own site.
_SOCIAL_WEBSITE = 10
# Catch-all servers accept every address, so delivery is likely but not proven.
_EMAIL_ACCEPT_ALL = 5
_ACCEPT_ALL_STATUSES = frozenset({"accept_all", "catchall", "catch_all"})
# An address on another domain than the business's own site (free webmail, an agency) reaches it less surely.
_EMAIL_OFF_DOMAIN = 10


@dataclass(frozen=True)
class Score:
    total: int
    breakdown: dict[str, int]  # every key of SCORE_COMPONENTS, in that order


def _present(value: str | None) -> bool:
    return bool(value and value.strip())


def _address_points(b: Business) -> int:
    full = (
        _present(b.street)
        and _present(b.housenumber)
        and (_present(b.postcode) or _present(b.city))
    )
    if full:
        return SCORE_COMPONENTS["address"]
    if any(_present(v) for v in (b.street, b.housenumber, b.postcode, b.city)):
        return _PARTIAL_ADDRESS
    return 0


def _website_points(website: str | None) -> int:
    domain = website_domain(website)
    if domain is None:
        return 0
    return _SOCIAL_WEBSITE if is_social_or_generic_host(domain) else SCORE_COMPONENTS["website"]


def _email_verified_points(status: str | None) -> int:
    key = (status or "").strip().lower().replace("-", "_")
    if key == "valid":
        return SCORE_COMPONENTS["email_verified"]
    return _EMAIL_ACCEPT_ALL if key in _ACCEPT_ALL_STATUSES else 0


def _own_domain(website: str | None) -> str | None:
    domain = website_domain(website)
    return None if domain is None or is_social_or_generic_host(domain) else domain


def _email_points(address: str | None, website: str | None, on_domain: bool | None) -> int:
    """Full points on the business's own domain (or when it has none to compare with), fewer off it."""
    if address is None:
        return 0
    if on_domain is None:
        own = _own_domain(website)
        host = address.rsplit("@", 1)[-1].lower()
        on_domain = own is None or host == own or host.endswith("." + own) or own.endswith("." + host)
    elif not on_domain and _own_domain(website) is None:
        on_domain = True  # nothing to be off
    return SCORE_COMPONENTS["email"] if on_domain else _EMAIL_OFF_DOMAIN


def score_business(
    b: Business, *, email: str | None = None, email_status: str | None = None, email_on_domain: bool | None = None
) -> Score:
    """Score a business; email (found by enrichment) overrides b.email when given.

    What enrichment found counts: an e-mail (fewer points off the business's
    own domain: ``email_on_domain``, else compared with its website) and its
    verification. A verification status only counts alongside a usable email:
    a status for an address we cannot show is worth nothing to the user.
    """
    address = normalize_email(email if email is not None else b.email)
    has_email = address is not None
    breakdown = {
        "name": SCORE_COMPONENTS["name"] if _present(b.name) else 0,
        "address": _address_points(b),
        "phone": SCORE_COMPONENTS["phone"] if phone_e164(b.phone, b.country) else 0,
        "website": _website_points(b.website),
        "email": _email_points(address, b.website, email_on_domain),
        "email_verified": _email_verified_points(email_status) if has_email else 0,
    }
    return Score(total=min(sum(breakdown.values()), MAX_SCORE), breakdown=breakdown)
