"""A campaign of listed businesses through the contact waterfall, on the real gate and the simulators."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from prospectpro.config import Settings
from prospectpro.domain.business import Business
from prospectpro.gate.core import Gate
from prospectpro.pipeline import enrich
from prospectpro.pipeline.runner import Pipeline
from prospectpro.providers.osm_email import OsmEmail
from prospectpro.providers.protocols import CallContext, DiscoveryQuery, Enricher
from prospectpro.store.db import Database
from prospectpro.store.schema import api_calls, leads

CENTER = (60.1699, 24.9384)  # Helsinki, where the campaigns ask


@dataclass
class Listed:
    """A discovery source that returns the businesses it was given (named osm: every tier uses it)."""

    businesses: Sequence[Business]
    name: str = "osm"

    def discover(self, query: DiscoveryQuery, ctx: CallContext) -> Sequence[Business]:
        return list(self.businesses)


def business(i: int, website: str | None, *, email: str | None = None, phone: str = "+358 9 123 4567") -> Business:
    return Business(
        source="osm", source_id=f"node/{9000 + i}", name=f"Cafe {i}", category="amenity=cafe",
        street="Mannerheimintie", housenumber=str(i + 1), postcode="00100", city="Helsinki", country="FI",
        phone=phone, website=website, email=email, latitude=CENTER[0] + i * 1e-5, longitude=CENTER[1],
    )


def steps(settings: Settings) -> list[Enricher]:
    return [OsmEmail(), enrich.WebsiteStep(settings), enrich.HunterStep(settings), enrich.VerifyStep(settings)]


def pipeline(businesses: Sequence[Business], settings: Settings, gate: Gate, *, concurrency: int = 8,
             step_timeout: float = 30.0) -> Pipeline:
    return Pipeline(sources=[Listed(businesses)], enrichers=steps(settings), enrich_concurrency=concurrency,
                    enrich_step_timeout=step_timeout, gate=gate)


def lead_rows(db: Database, campaign_id: str) -> dict[str, dict[str, Any]]:
    with db.read() as conn:
        rows = conn.execute(select(leads).where(leads.c.campaign_id == campaign_id)).all()
    return {r.business_name: dict(r._mapping) for r in rows}


def spent(db: Database, job_id: str, provider: str | None = None) -> Decimal:
    with db.read() as conn:
        query = select(api_calls.c.cost).where(api_calls.c.job_id == job_id)
        if provider is not None:
            query = query.where(api_calls.c.provider == provider)
        return sum((Decimal(str(c)) for c in conn.execute(query).scalars()), Decimal(0))
