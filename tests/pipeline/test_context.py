"""Providers get their context: the job, the owner, the tier, the budget, the
remaining need, and the gate every provider call goes through (issue 8)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from prospectpro.config import Settings
from prospectpro.domain.business import Business
from prospectpro.domain.campaign import Tier
from prospectpro.domain.status import JobStatus
from prospectpro.gate import Answer, GateRequest
from prospectpro.jobs.queue import list_events
from prospectpro.jobs.worker import Worker
from prospectpro.pipeline.runner import Pipeline
from prospectpro.providers.osm import OsmPlacesSource
from prospectpro.providers.osm_email import OsmEmail
from prospectpro.providers.protocols import CallContext, DiscoveryQuery, Enrichment, ProviderClient
from prospectpro.store.db import Database
from prospectpro.store.schema import LOCAL_USER_ID
from tests.pipeline.conftest import submit, wait_until_done

T = TypeVar("T")


class RecordingGate:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def call(self, ctx: CallContext, request: GateRequest, fn: Callable[[], T]) -> Answer:
        with self._lock:
            self.calls.append((request.provider, request.operation))
        return Answer(body=fn(), cost=Decimal("0"), reused=False)

    def http(self, provider: str) -> ProviderClient:
        raise LookupError(provider)


class RecordingSource:
    name = "osm"  # a shared source name: the discovery stage runs only those

    def __init__(self, db: Database) -> None:
        self.inner = OsmPlacesSource(db)
        self.calls: list[tuple[DiscoveryQuery, CallContext]] = []

    def discover(self, query: DiscoveryQuery, ctx: CallContext) -> list[Business]:
        self.calls.append((query, ctx))
        request = GateRequest(self.name, "search", key={"tags": list(query.tags)})
        return ctx.gate.call(ctx, request, lambda: self.inner.discover(query, ctx)).body


class RecordingEnricher:
    """Makes its "lookup" through the gate; fails once, on call ``fail_on``, if given."""

    name = "osm"  # a shared source name: the discovery stage runs only those

    def __init__(self, fail_on: int | None = None) -> None:
        self.contexts: list[CallContext] = []
        self.fail_on = fail_on
        self._lock = threading.Lock()

    def enrich(self, business: Business, found: Enrichment, ctx: CallContext) -> Enrichment:
        with self._lock:
            self.contexts.append(ctx)
            if len(self.contexts) == self.fail_on:
                raise RuntimeError("simulated provider outage")
        request = GateRequest(self.name, "lookup", key={"name": business.name})
        return ctx.gate.call(ctx, request, lambda: found.with_step(self.name, "none")).body


def test_each_provider_call_gets_the_job_its_owner_tier_budget_and_need(
    places_db: Database, run_worker: Callable[..., Worker]
) -> None:
    job = submit(places_db, max_results=7, tier="professional", budget_limit="12.5")
    gate, source, enricher = RecordingGate(), RecordingSource(places_db), RecordingEnricher()
    pipeline = Pipeline(sources=[source], enrichers=[OsmEmail(), enricher], enrich_concurrency=2, gate=gate)
    run_worker(places_db, pipeline)
    final = wait_until_done(places_db, job.id)
    assert final.status == JobStatus.completed and final.metrics["leads"] == 7

    [(query, ctx)] = source.calls
    assert (query.tags, query.type_name, query.wanted) == (("amenity=cafe",), "cafe", 7)
    assert query.area.label.startswith("Helsinki")
    assert (ctx.job_id, ctx.owner_id, ctx.tier, ctx.wanted) == (job.id, LOCAL_USER_ID, Tier.professional, 7)
    assert ctx.budget_limit == Decimal("12.5") and isinstance(ctx.budget_limit, Decimal)
    assert ctx.gate is gate

    # One enrichment call per selected lead, each told the job and the need as the stage began.
    assert len(enricher.contexts) == 7
    assert {(c.job_id, c.owner_id, c.tier, c.wanted, c.budget_limit) for c in enricher.contexts} == {
        (job.id, LOCAL_USER_ID, Tier.professional, 7, Decimal("12.5"))
    }
    assert all(c.gate is gate for c in enricher.contexts)
    assert gate.calls.count(("osm", "search")) == 1
    assert gate.calls.count(("osm", "lookup")) == 7


def test_a_resumed_enrichment_is_told_only_the_remaining_need(
    places_db: Database, run_worker: Callable[..., Worker]
) -> None:
    job = submit(places_db, Settings(max_attempts=3), max_results=7)
    enricher = RecordingEnricher(fail_on=4)  # three leads, then the first attempt fails
    pipeline = Pipeline(sources=[OsmPlacesSource(places_db)], enrichers=[enricher], enrich_concurrency=1)
    run_worker(places_db, pipeline, retry_base_seconds=0.01, retry_max_seconds=0.02)
    final = wait_until_done(places_db, job.id)
    assert final.status == JobStatus.completed and final.attempts == 2 and final.metrics["leads"] == 7
    wanted: list[Any] = [c.wanted for c in enricher.contexts]
    # Attempt 1: 7 to do, fails on its 4th; attempt 2 resumes with the 4 not yet written.
    assert wanted == [7, 7, 7, 7, 4, 4, 4, 4]
    assert sum(e.kind == "lead_enriched" for e in list_events(places_db, job.id)) == 7
