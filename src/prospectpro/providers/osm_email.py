"""The free enrichment step 1: the e-mail the business itself published in OSM (``email`` / ``contact:email``).

Also home of the two small rules every contact step shares: whether an
address is on the business's own domain, and which of the addresses found
is the lead's e-mail.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from prospectpro.domain.business import Business
from prospectpro.domain.normalize import is_social_or_generic_host, normalize_email, website_domain
from prospectpro.domain.tiers import TIERS
from prospectpro.providers.protocols import CallContext, Enrichment

_SOURCE_RANK = {"osm": 0, "website": 0, "hunter": 1}  # what the business published first, then Hunter's


def registrable(host: str) -> str:
    """The registrable domain of a host (public suffix list when helper G's domain.emails offers it)."""
    try:
        from prospectpro.domain import emails as rules

        fn = getattr(rules, "registrable_domain", None)
        if fn is not None:
            value = fn(host)
            if value:
                return str(value).lower()
    except ImportError:  # not in this build: the host without "www." is close enough
        pass
    return host.lower().removeprefix("www.")


def business_domain(website: str | None) -> str | None:
    """The business's own domain, or None (no website, or a social/platform page that names no business)."""
    host = website_domain(website)
    if host is None or is_social_or_generic_host(host):
        return None
    return registrable(host)


def on_domain(address: str, website: str | None) -> bool:
    domain = business_domain(website)
    if domain is None:
        return False
    host = address.rsplit("@", 1)[-1].lower()
    return host == domain or host.endswith("." + domain) or registrable(host) == domain


def source_kind(source: str | None) -> str:
    return (source or "").split(":", 1)[0]


def choose(found: Enrichment, *, personal: bool) -> Enrichment:
    """The lead's e-mail from every address found: on-domain first, role before personal, published before
    Hunter's, then Hunter's confidence. Personal addresses only when the tier keeps them."""
    usable = [e for e in found.emails if personal or e.get("kind") != "personal"]
    if not usable:
        return replace(
            found, email=None, email_source=None, email_status=None, email_confidence=None, email_on_domain=False,
            verification=None,
        )
    best = min(
        usable,
        key=lambda e: (
            not e.get("on_domain"),
            e.get("kind") == "personal",
            _SOURCE_RANK.get(source_kind(e.get("source")), 2),
            -(e.get("confidence") or 0),
        ),
    )
    if best["address"] == found.email:
        return found
    verified = best.get("verified")
    return replace(
        found,
        email=best["address"],
        email_source=best.get("source"),
        email_confidence=best.get("confidence"),
        email_on_domain=bool(best.get("on_domain")),
        email_status="valid" if verified else None,
        verification=dict(verified) if verified else None,
    )


def with_emails(found: Enrichment, items: Iterable[Mapping[str, Any]]) -> Enrichment:
    """``found`` plus these addresses (an address already found keeps its first source)."""
    known = {e["address"] for e in found.emails}
    added = []
    for item in items:
        if item["address"] not in known:
            known.add(item["address"])
            added.append(dict(item))
    return replace(found, emails=(*found.emails, *added)) if added else found


class OsmEmail:
    name = "osm_email"

    def enrich(self, business: Business, found: Enrichment, ctx: CallContext) -> Enrichment:
        email = normalize_email(business.email)
        if email is None:
            outcome = "invalid" if business.email else "none"
            return found.with_step(self.name, outcome)
        item = {
            "address": email,
            "source": business.source,
            "kind": "role",  # published by the business itself in the map data
            "on_domain": on_domain(email, business.website),
        }
        personal = TIERS[ctx.tier].personal_emails
        return choose(with_emails(found, [item]), personal=personal).with_step(self.name, "found")
