"""Google in a campaign: tiers, the discovery stage's metrics, merging with OSM, failures, content terms."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from prospectpro.config import Settings
from prospectpro.domain.business import Business, lead_provenance
from prospectpro.domain.clock import utcnow
from prospectpro.gate.core import Gate
from prospectpro.jobs.queue import get_job, list_events
from prospectpro.jobs.worker import Worker, WorkerConfig
from prospectpro.ops import gate_checks
from prospectpro.pipeline.kind import campaign_kind
from prospectpro.pipeline.runner import Pipeline
from prospectpro.providers.google_places import GooglePlacesSource
from prospectpro.providers.google_refresh import enqueue_refresh, refresh_kind, refresh_quote
from prospectpro.providers.osm import OsmPlacesSource
from prospectpro.providers.osm_email import OsmEmail
from prospectpro.store.db import Database
from prospectpro.store.leads import clear_expired_google_fields
from prospectpro.store.schema import LOCAL_USER_ID, api_calls, discovery_jobs, job_events, leads
from tests.pipeline.conftest import submit, wait_until_done
from tests.providers.conftest import KEY, fast_spec, google_settings
from tests.sim import google as google_sim
from tests.sim.server import Simulator

# Café Artist as the bundled OSM data has it (Pohjoisesplanadi 2, no phone, no website), and as Google does.
ARTIST = google_sim.place(
    "ChIJartist", "Café Artist", 60.16741, 24.94295, street="Pohjoisesplanadi", number="2", postcode="00170",
    international_phone="+358 9 1234567", website="https://cafeartist.example.fi/", rating=4.4, reviews=321,
)


def google_places_list() -> list[dict[str, Any]]:
    places = [ARTIST, *google_sim.grid(25, latitude=60.1674, longitude=24.9425)]
    places[3]["businessStatus"] = "CLOSED_PERMANENTLY"
    return places


def rig(db: Database, sim: Simulator, **changes: Any) -> tuple[Settings, Gate, google_sim.GoogleState]:
    state = google_sim.install(sim, google_places_list(), api_key=KEY)
    settings = google_settings(sim, **changes)
    return settings, Gate(db, settings, [fast_spec(settings)], sleep=lambda s: None), state


def start(db: Database, settings: Settings, gate: Gate) -> Worker:
    pipeline = Pipeline(
        sources=[OsmPlacesSource(db), GooglePlacesSource(settings)], enrichers=[OsmEmail()], gate=gate
    )
    worker = Worker(db, [campaign_kind(pipeline), refresh_kind(gate, settings)],
                    WorkerConfig(lease_seconds=5.0, poll_interval=0.05))
    _WORKERS.append(worker.start())
    return worker


_WORKERS: list[Worker] = []


@pytest.fixture(autouse=True)
def _stop_workers() -> Any:
    yield
    while _WORKERS:
        worker = _WORKERS.pop()
        if not worker.stopped:
            worker.stop(timeout=10)


def lead_rows(db: Database, campaign_id: str) -> list[dict[str, Any]]:
    with db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(select(leads).where(leads.c.campaign_id == campaign_id))]


@pytest.mark.parametrize("fields", [{"tier": "base"}, {"tier": "professional", "sources": ["osm"]}])
def test_base_never_calls_google_whatever_the_budget(
    places_db: Database, sim: Simulator, fields: dict[str, Any]
) -> None:
    settings, gate, state = rig(places_db, sim)
    start(places_db, settings, gate)
    job = submit(places_db, settings, budget_limit="1000", max_results=30, **fields)
    done = wait_until_done(places_db, job.id)
    assert done.status.value == "completed"
    assert sim.count("/v1/") == 0
    assert done.metrics["source_counts"] == {"osm": 85} and done.metrics["failed_sources"] == []
    assert not any(ref.startswith("google:") for lead in lead_rows(places_db, job.campaign_id) for ref in lead["sources"])


def test_professional_discovers_with_google_and_merges_it_with_osm(
    places_db: Database, sim: Simulator
) -> None:
    settings, gate, state = rig(places_db, sim)
    start(places_db, settings, gate)
    job = submit(places_db, settings, tier="professional", budget_limit="1", max_results=200, min_score=0)
    done = wait_until_done(places_db, job.id)
    m = done.metrics
    assert done.status.value == "completed", done.error
    assert len(state.search_calls) == 2  # 26 places: the second page has the last 6, no token
    assert m["source_counts"] == {"osm": 85, "google": 25}
    assert m["skipped"]["closed"] == 1 and m["skipped"]["outside_area"] == 0
    assert m["failed_sources"] == [] and m["budget_exhausted"] is False
    rows = {r["business_name"]: r for r in lead_rows(places_db, job.campaign_id)}
    artist = rows["Café Artist"]
    assert artist["sources"][0].startswith("osm:") and "google:ChIJartist" in artist["sources"]
    fs = artist["field_sources"]
    assert fs["business_name"]["source"].startswith("osm:") and fs["address"]["source"].startswith("osm:")
    assert fs["phone"]["source"] == "google:ChIJartist" and fs["phone"]["fetched_at"]
    assert fs["rating"]["source"] == "google:ChIJartist" and artist["rating"] == 4.4 and artist["review_count"] == 321
    assert artist["phone"] == "+358 9 1234567" and artist["website"] == "https://cafeartist.example.fi/"
    assert artist["google_expires_at"] is not None
    fetched = fs["phone"]["fetched_at"].replace("Z", "+00:00")
    assert abs(artist["google_expires_at"] - (utcnow() + timedelta(days=30))) < timedelta(minutes=5)
    assert fetched < (utcnow() + timedelta(seconds=1)).isoformat()
    osm_only = rows["Caffe Mansku"]
    assert osm_only["google_expires_at"] is None and all(v["source"].startswith("osm:")
                                                          for v in osm_only["field_sources"].values())
    # The Google-only ones name Google for every value.
    google_only = rows["Sim Cafe ChIJsim 0"]
    assert google_only["sources"] == ["google:ChIJsim0000"]
    assert {v["source"] for v in google_only["field_sources"].values()} == {"google:ChIJsim0000"}


def test_merge_keeps_both_ids_and_each_fields_source() -> None:
    osm = Business("osm", "node/1", "Café Artist", street="Pohjoisesplanadi", housenumber="2", website=None)
    google = Business("google", "ChIJa", "Cafe Artist", street="Pohjoisesplanadi", housenumber="2",
                      phone="+358 9 1", website="https://a.example/", rating=4.4, review_count=3,
                      fetched_at="2026-12-01T00:00:00Z", expires_at="2026-12-31T00:00:00Z")
    for merged in (osm.merged_with(google), google.merged_with(osm)):  # whichever was found first
        assert merged.ref == "osm:node/1" and merged.sources == ["osm:node/1", "google:ChIJa"]
        assert merged.name == "Café Artist" and merged.phone == "+358 9 1" and merged.rating == 4.4
        columns, expires = lead_provenance(merged)
        assert columns["business_name"]["source"] == "osm:node/1"
        assert columns["phone"] == {"source": "google:ChIJa", "fetched_at": "2026-12-01T00:00:00Z"}
        assert expires is not None and expires.isoformat().startswith("2026-12-31")
        assert Business.from_dict(json.loads(json.dumps(merged.to_dict()))) == merged


def test_a_bad_key_names_google_in_failed_sources_and_the_key_is_nowhere(
    places_db: Database, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings, gate, state = rig(places_db, sim)
    state.api_key = "the-right-key"  # ours is refused, and echoed back in Google's message
    start(places_db, settings, gate)
    job = submit(places_db, settings, tier="professional", budget_limit="1", max_results=20)
    done = wait_until_done(places_db, job.id)
    assert done.status.value == "completed"  # OSM carried the campaign
    assert len(state.search_calls) == 1
    [failed] = done.metrics["failed_sources"]
    assert failed["source"] == "google" and failed["reason"].startswith("auth:")
    assert "google" not in done.metrics["source_counts"] or done.metrics["source_counts"]["google"] == 0
    events = list_events(places_db, job.id)
    assert any(e.kind == "source_failed" and e.data["source"] == "google" for e in events)
    # The breaker is open, and doctor says so.
    check = next(c for c in gate_checks(settings, places_db) if "google" in c.name)
    assert check.status == "fail" and "auth" in check.detail
    # Every stored and logged byte of the run: no key.
    with places_db.read() as conn:
        stored = [
            json.dumps([{k: str(v) for k, v in r._mapping.items()} for r in conn.execute(select(t))])
            for t in (api_calls, discovery_jobs, job_events, leads)
        ]
    assert state.search_calls[0].headers["x-goog-api-key"] == KEY  # it was sent, so it could leak
    assert all(KEY not in text for text in stored)
    assert KEY not in caplog.text and KEY not in (get_job(places_db, job.id).error or "")


def test_expired_google_values_are_cleared_and_refresh_fetches_them_again(
    places_db: Database, sim: Simulator
) -> None:
    settings, gate, state = rig(places_db, sim)
    start(places_db, settings, gate)
    job = submit(places_db, settings, tier="professional", budget_limit="1", max_results=200, min_score=0)
    wait_until_done(places_db, job.id)
    before = {r["id"]: r for r in lead_rows(places_db, job.campaign_id)}

    with places_db.write() as conn:
        assert clear_expired_google_fields(conn, utcnow() + timedelta(days=29)) == 0
        cleared = clear_expired_google_fields(conn, utcnow() + timedelta(days=31))
    assert cleared == 25  # the 24 Google-only leads and Café Artist
    after = {r["id"]: r for r in lead_rows(places_db, job.campaign_id)}
    artist = next(r for r in after.values() if "google:ChIJartist" in r["sources"])
    assert artist["business_name"] == "Café Artist" and artist["address"]  # OSM's stay
    assert artist["phone"] is None and artist["website"] is None and artist["rating"] is None
    assert artist["google_expires_at"] is None and "phone" not in artist["field_sources"]
    only = next(r for r in after.values() if r["sources"] == ["google:ChIJsim0000"])
    assert only["business_name"] == "" and only["phone"] is None and only["latitude"] is None
    osm_rows = [r for r in after.values() if not any(s.startswith("google:") for s in r["sources"])]
    assert osm_rows and all(r == before[r["id"]] for r in osm_rows)

    quote = refresh_quote(places_db, settings, LOCAL_USER_ID, job.campaign_id)
    assert quote.leads == 25 and quote.max_cost == 25 * Decimal("0.02")
    refresh = enqueue_refresh(places_db, settings, LOCAL_USER_ID, job.campaign_id, quote.max_cost)
    done = wait_until_done(places_db, refresh.id)
    assert done.status.value == "completed" and done.metrics["refreshed"] == 25
    assert len(state.details_calls) == 25
    again = {r["id"]: r for r in lead_rows(places_db, job.campaign_id)}
    artist = again[artist["id"]]
    assert artist["phone"] == "+358 9 1234567" and artist["rating"] == 4.4 and artist["google_expires_at"]
    assert artist["field_sources"]["business_name"]["source"].startswith("osm:")
    assert artist["field_sources"]["phone"]["source"] == "google:ChIJartist"
    only = again[only["id"]]
    assert only["business_name"] == "Sim Cafe ChIJsim 0" and only["latitude"] is not None
    with places_db.read() as conn:
        details = conn.execute(select(api_calls).where(api_calls.c.operation == "place_details")).all()
    assert len(details) == 25 and sum(Decimal(str(r.cost)) for r in details) == quote.max_cost


def test_refresh_stops_at_its_budget(places_db: Database, sim: Simulator) -> None:
    settings, gate, state = rig(places_db, sim)
    start(places_db, settings, gate)
    job = submit(places_db, settings, tier="professional", budget_limit="1", max_results=200, min_score=0)
    wait_until_done(places_db, job.id)
    refresh = enqueue_refresh(places_db, settings, LOCAL_USER_ID, job.campaign_id, Decimal("0.05"))
    done = wait_until_done(places_db, refresh.id)
    assert done.metrics["refreshed"] == 2 and done.metrics["budget_exhausted"] is True
    assert len(state.details_calls) == 2
