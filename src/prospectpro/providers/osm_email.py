"""The free enrichment step: the email the business itself published in OSM."""

from __future__ import annotations

from dataclasses import replace

from prospectpro.domain.business import Business
from prospectpro.domain.normalize import normalize_email
from prospectpro.providers.protocols import CallContext, Enrichment


class OsmEmail:
    name = "osm_email"

    def enrich(self, business: Business, found: Enrichment, ctx: CallContext) -> Enrichment:
        if found.email:
            return found.with_step(self.name, "skipped", reason="email already found")
        email = normalize_email(business.email)
        if email is None:
            outcome = "invalid" if business.email else "none"
            return found.with_step(self.name, outcome)
        return replace(found, email=email, email_source=business.source).with_step(self.name, "found")
