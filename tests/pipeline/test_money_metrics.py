"""A job's money metrics, end to end: Google Places in the simulator, the real gate, a real worker.

The quote's ``max_cost`` bounds what the run then spends; the final metrics
carry money as decimal strings on both stores; a budget that stops the paid
calls says so (metrics, summary, event).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from prospectpro.config import Settings
from prospectpro.domain.campaign import CampaignRequest
from prospectpro.domain.status import JobStatus
from prospectpro.gate.core import Gate
from prospectpro.gate.prices import price
from prospectpro.jobs.model import Job
from prospectpro.jobs.queue import list_events
from prospectpro.jobs.worker import Worker
from prospectpro.pipeline.results import money_metrics, summary
from prospectpro.pipeline.runner import build_pipeline
from prospectpro.providers import google_places
from prospectpro.services.campaigns import get_campaign
from prospectpro.services.quote import quote
from prospectpro.services.submissions import submit_campaign
from prospectpro.services.users import create_user
from prospectpro.store.db import Database
from prospectpro.store.ledger import job_spent
from prospectpro.store.schema import LOCAL_USER_ID, campaigns
from tests.pipeline.conftest import wait_until_done
from tests.sim import google as google_sim
from tests.sim.server import Simulator

KEY = "sim-google-key-for-money-metrics"
HERE = "60.1699,24.9384,3000"  # coordinates: no places index needed (the osm source finds nothing here)
PAGE = price("google.text_search_enterprise")
SKIPPED_KEYS = {"delivered", "below_min_score", "closed", "over_budget", "outside_area"}


@dataclass
class Rig:
    db: Database
    settings: Settings
    state: google_sim.GoogleState
    worker: Callable[..., Worker]

    def request(self, **fields: Any) -> CampaignRequest:
        return CampaignRequest.model_validate(
            {"business_type": "cafe", "location": HERE, "tier": "professional", "min_score": 0, **fields}
        )

    def run(self, request: CampaignRequest, owner_id: str = LOCAL_USER_ID) -> Job:
        job = submit_campaign(self.db, self.settings, owner_id, request).job
        return wait_until_done(self.db, job.id, timeout=60)


@pytest.fixture
def rig(any_db: Database, sim: Simulator, run_worker: Callable[..., Worker]) -> Iterator[Rig]:
    # 60 open places and 5 closed ones, all inside the area.
    places = google_sim.grid(60) + google_sim.grid(5, prefix="ChIJshut", status="CLOSED_PERMANENTLY", step=0.0007)
    state = google_sim.install(sim, places, api_key=KEY)
    settings = Settings(
        import_bundled_places=False,
        google_places_api_key=KEY,
        google_places_base_url=sim.url,
        google_places_rate_per_second=1000.0,
    )
    spec = google_places.spec(settings)
    assert spec is not None
    gate = Gate(any_db, settings, [replace(spec, backoff_base=0.01, backoff_max=0.05, max_attempts=2)])
    run_worker(any_db, build_pipeline(any_db, settings, gate=gate))
    yield Rig(any_db, settings, state, run_worker)
    gate.close()


def test_completed_metrics_shape_with_money_as_strings(rig: Rig) -> None:
    final = rig.run(rig.request(max_results=25))
    assert final.status == JobStatus.completed, final.error
    m = final.metrics
    pages = len(rig.state.search_calls)
    assert pages == 2  # 25 wanted: two pages of 20 (the closed ones are dropped, not counted as found)
    spent = PAGE * pages
    assert m["total_cost"] == "0.07" and Decimal(m["total_cost"]) == spent
    assert m["leads"] == 25 and m["exhausted"] is False and m["budget_exhausted"] is False
    assert m["cost_per_lead"] == "0.0028"  # 0.07 / 25
    assert isinstance(m["avg_confidence"], float)
    assert set(m["skipped"]) == SKIPPED_KEYS and all(isinstance(v, int) for v in m["skipped"].values())
    assert m["skipped"]["over_budget"] == 0 and m["skipped"]["delivered"] == 0
    assert m["providers"]["google"] == {
        "calls": pages,
        "reused": 0,
        "errors": 0,
        "cost": "0.07",
        "saved_cost": "0",
    }
    assert m["source_counts"]["google"] >= 25
    # Live osm has no service in this gate (only Google's spec): named with its reason, the campaign goes on.
    assert all(set(f) == {"source", "reason"} and f["source"] != "google" for f in m["failed_sources"])
    assert m["summary"] == "Found 25 leads."
    for key in ("leads", "avg_confidence", "summary", "delivered_skipped", "below_min_score", "qualified_leads"):
        assert key in m, key
    assert "sources" not in m  # renamed source_counts
    # The campaign row and its API form agree, as a decimal string on both stores.
    with rig.db.read() as conn:
        stored = conn.execute(select(campaigns.c.total_cost).where(campaigns.c.id == final.campaign_id)).scalar_one()
        assert Decimal(stored) == spent == job_spent(conn, final.id)
    assert get_campaign(rig.db, str(final.campaign_id), LOCAL_USER_ID)["total_cost"] == "0.07"
    # Every event's cost so far is a string too.
    costs = [e.data["metrics"].get("total_cost") for e in list_events(rig.db, final.id)]
    assert all(isinstance(c, str) for c in costs if c is not None)


def test_a_budget_that_stops_the_paid_calls_says_so(rig: Rig) -> None:
    request = rig.request(max_results=45, budget_limit="0.05")
    quoted = quote(rig.db, rig.settings, LOCAL_USER_ID, request)
    assert quoted.max_cost == Decimal("0.05") and not quoted.within_budget
    final = rig.run(request)
    assert final.status == JobStatus.completed, final.error
    m = final.metrics
    assert len(rig.state.search_calls) == 1  # the second page would have crossed $0.05
    assert m["budget_exhausted"] is True and m["exhausted"] is True
    assert m["total_cost"] == "0.035" and m["leads"] == 20 and m["cost_per_lead"] == "0.00175"
    assert m["summary"] == "Found 20 of 45 requested leads: the budget of $0.05 was reached."
    assert any(e.kind == "budget_exhausted" for e in list_events(rig.db, final.id))


def test_quote_max_cost_bounds_what_the_run_spends(rig: Rig) -> None:
    spent_by_size = {}
    for size in (5, 25, 45, 70):
        # An owner each: the same owner's next campaign would reuse the pages the last one paid for.
        owner, _ = create_user(rig.db, f"owner-{size}")
        before = len(rig.state.search_calls)
        request = rig.request(max_results=size)
        quoted = quote(rig.db, rig.settings, owner.user_id, request)
        final = rig.run(request, owner.user_id)
        assert final.status == JobStatus.completed, final.error
        with rig.db.read() as conn:
            spent = job_spent(conn, final.id)
        pages = len(rig.state.search_calls) - before
        assert spent == PAGE * pages > 0
        assert spent <= quoted.max_cost, (size, spent, quoted)
        assert Decimal(final.metrics["total_cost"]) == spent
        spent_by_size[size] = spent
    # The runs differ: what a run pays follows its size (1, 2, 3 pages; 70 needs a second query).
    assert spent_by_size == {5: PAGE, 25: 2 * PAGE, 45: 3 * PAGE, 70: spent_by_size[70]} and spent_by_size[70] > 3 * PAGE


def test_money_metrics_from_the_earlier_stages() -> None:
    earlier = {
        "delivered_skipped": 2,
        "below_min_score": 7,
        "skipped": {"closed": 3, "outside_area": 1},
        "failed_sources": [{"source": "google", "reason": "auth: API key not valid"}],
    }
    providers = {"google": {"calls": 2, "reused": 1, "errors": 1, "cost": Decimal("0.0700"), "saved_cost": Decimal("0")}}
    m = money_metrics(
        earlier, leads=0, requested=10, cost=Decimal("0.0700"), budget_exhausted=False, providers=providers, taken=1
    )
    assert m["skipped"] == {"delivered": 3, "below_min_score": 7, "closed": 3, "over_budget": 0, "outside_area": 1}
    assert m["cost_per_lead"] is None and m["total_cost"] == "0.07" and m["exhausted"] is True
    assert m["providers"] == {"google": {"calls": 2, "reused": 1, "errors": 1, "cost": "0.07", "saved_cost": "0"}}
    assert m["failed_sources"] == earlier["failed_sources"]
    empty = money_metrics({}, leads=3, requested=3, cost=Decimal(0), budget_exhausted=False, providers={})
    assert empty["cost_per_lead"] == "0" and empty["skipped"] == dict.fromkeys(SKIPPED_KEYS, 0)


def test_the_summary_says_when_the_budget_stopped_it() -> None:
    assert summary(5, 5) == "Found 5 leads."
    assert summary(5, 5, budget=Decimal("5")) == "Found 5 leads; the budget of $5.00 was reached."
    assert summary(3, 5, budget=Decimal("0.5")) == "Found 3 of 5 requested leads: the budget of $0.50 was reached."
    assert summary(3, 5, taken=1, budget=Decimal("2")).endswith(", and the budget of $2.00 was reached.")
    assert summary(3, 5).endswith("the sources have no more that qualify.")
