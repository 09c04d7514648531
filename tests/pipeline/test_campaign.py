"""A campaign end to end on the bundled OpenStreetMap data, in-process."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import osmium
import pytest
from sqlalchemy import func, select

from prospectpro.domain.normalize import normalize_email, normalize_website, phone_e164
from prospectpro.domain.status import JobStatus
from prospectpro.jobs.queue import list_events, request_cancel
from prospectpro.jobs.worker import Worker
from prospectpro.services.campaigns import list_leads
from prospectpro.store.db import Database
from prospectpro.store.schema import LOCAL_USER_ID, job_candidates
from tests.pipeline.conftest import make_pipeline, submit, wait_until_done
from tests.plugins import FailingEnricher, SlowEnricher

BUNDLED = Path(__file__).parents[2] / "src" / "prospectpro" / "data" / "helsinki-center.osm.pbf"
OSM_TYPES = {"node": "n", "way": "w", "relation": "r"}


def osm_tags() -> dict[str, dict[str, str]]:
    """Tags straight from the file, keyed like lead sources: 'osm:node/123'."""
    tags: dict[str, dict[str, str]] = {}
    for obj in osmium.FileProcessor(str(BUNDLED)).with_filter(osmium.filter.KeyFilter("name")):
        kind = {"n": "node", "w": "way", "r": "relation"}[obj.type_str()]
        tags[f"osm:{kind}/{obj.id}"] = dict(obj.tags)
    return tags


def test_cafes_in_helsinki_are_real_osm_businesses(places_db: Database, run_worker: Callable[..., Worker]) -> None:
    job = submit(places_db, max_results=20)
    run_worker(places_db, make_pipeline(places_db))
    final = wait_until_done(places_db, job.id)
    assert final.status == JobStatus.completed and final.progress == 100
    leads, total = list_leads(places_db, final.campaign_id, LOCAL_USER_ID)
    assert total == len(leads) == 20
    assert [lead["confidence_score"] for lead in leads] == sorted((lead["confidence_score"] for lead in leads), reverse=True)
    assert all(lead["confidence_score"] >= 50 for lead in leads)
    source = osm_tags()
    emails = 0
    for lead in leads:
        tags = source[lead["sources"][0]]
        assert "cafe" in (tags.get("amenity"), tags.get("shop")) or tags.get("amenity") == "cafe"
        assert lead["business_name"] == tags["name"]
        osm_phone = tags.get("phone") or tags.get("contact:phone")
        if lead["phone"]:
            assert phone_e164(lead["phone"], "FI") == phone_e164(osm_phone, "FI")
        else:
            assert phone_e164(osm_phone, "FI") is None
        osm_site = tags.get("website") or tags.get("contact:website") or tags.get("url")
        assert lead["website"] == (normalize_website(osm_site) if osm_site else None)
        osm_email = tags.get("email") or tags.get("contact:email")
        assert lead["email"] == (normalize_email(osm_email) if osm_email else None)
        emails += lead["email"] is not None
        assert f"{tags.get('addr:street', '')}" in (lead["address"] or "")
    assert emails >= 1
    metrics = final.metrics
    assert metrics["businesses_found"] >= 80 and metrics["qualified_leads"] >= 20
    assert metrics["leads_enriched"] == 20 and metrics["leads"] == 20 and metrics["exhausted"] is False
    assert metrics["total_cost"] == "0"  # money is a decimal string


def test_event_log_is_gap_free_and_progress_monotone(places_db: Database, run_worker: Callable[..., Worker]) -> None:
    job = submit(places_db, max_results=10)
    run_worker(places_db, make_pipeline(places_db))
    wait_until_done(places_db, job.id)
    events = list_events(places_db, job.id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    progress = [e.data["progress"] for e in events]
    assert progress == sorted(progress) and progress[-1] == 100
    kinds = [e.kind for e in events]
    assert kinds[:2] == ["created", "claimed"] and kinds[-1] == "completed"
    assert kinds.count("lead_enriched") == 10
    stages = [e.data["current_stage"] for e in events if e.kind == "stage_started"]
    assert stages == ["discovering_businesses", "scoring_businesses", "enriching_contacts", "storing_results"]


def test_fewer_results_than_asked_completes_as_exhausted(places_db: Database, run_worker: Callable[..., Worker]) -> None:
    job = submit(places_db, business_type="dentist", max_results=500, min_score=0)
    run_worker(places_db, make_pipeline(places_db))
    final = wait_until_done(places_db, job.id)
    assert final.status == JobStatus.completed
    assert final.metrics["exhausted"] is True
    assert 0 < final.metrics["leads"] < 500


def test_duplicates_are_merged_and_delivered_businesses_skipped(
    places_db: Database, run_worker: Callable[..., Worker]
) -> None:
    run_worker(places_db, make_pipeline(places_db))
    first = wait_until_done(places_db, submit(places_db, max_results=5).id)
    second = wait_until_done(places_db, submit(places_db, max_results=5).id)
    again = wait_until_done(places_db, submit(places_db, max_results=5, include_delivered=True).id)
    names = lambda job: {lead["business_name"] for lead in list_leads(places_db, job.campaign_id, LOCAL_USER_ID)[0]}  # noqa: E731
    assert len(names(first)) == len(names(second)) == 5
    assert not names(first) & names(second)
    assert second.metrics["delivered_skipped"] == 5
    assert names(again) == names(first)
    for job in (first, second):
        leads, _ = list_leads(places_db, job.campaign_id, LOCAL_USER_ID)
        assert len({(lead["business_name"], lead["address"]) for lead in leads}) == len(leads)


def test_cancel_mid_run_keeps_the_leads_found_so_far(places_db: Database, run_worker: Callable[..., Worker]) -> None:
    job = submit(places_db, max_results=20)
    run_worker(places_db, make_pipeline(places_db, SlowEnricher(0.15), concurrency=1))
    seen = threading.Event()

    def watch() -> None:
        while not seen.is_set():
            if sum(e.kind == "lead_enriched" for e in list_events(places_db, job.id)) >= 3:
                seen.set()
            seen.wait(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    assert seen.wait(30)
    request_cancel(places_db, job.id, LOCAL_USER_ID)
    final = wait_until_done(places_db, job.id)
    watcher.join()
    assert final.status == JobStatus.cancelled
    enriched = sum(e.kind == "lead_enriched" for e in list_events(places_db, job.id))
    leads, total = list_leads(places_db, final.campaign_id, LOCAL_USER_ID)
    assert 3 <= enriched < 20
    assert total == enriched == final.metrics["leads"]


def test_a_stage_that_keeps_raising_fails_after_the_retry_limit(
    places_db: Database, run_worker: Callable[..., Worker]
) -> None:
    from prospectpro.config import Settings

    job = submit(places_db, Settings(max_attempts=3), max_results=3)
    run_worker(places_db, make_pipeline(places_db, FailingEnricher()), retry_base_seconds=0.01, retry_max_seconds=0.02)
    final = wait_until_done(places_db, job.id)
    assert final.status == JobStatus.failed and final.attempts == 3
    assert final.error == "enriching_contacts: RuntimeError: simulated provider outage (after 3 attempts)"
    kinds = [e.kind for e in list_events(places_db, job.id)]
    assert kinds.count("retry_scheduled") == 2 and kinds[-1] == "failed"
    # Discovery ran once: the retries resumed from its checkpoint.
    assert kinds.count("stage_started") == 3
    with places_db.read() as conn:
        found = conn.execute(select(func.count()).select_from(job_candidates)).scalar_one()
    assert found == final.metrics["businesses_found"]


@pytest.mark.parametrize("workers", [3])
def test_concurrent_workers_run_each_job_once(
    places_db: Database, run_worker: Callable[..., Worker], workers: int
) -> None:
    jobs = [submit(places_db, max_results=3, include_delivered=True) for _ in range(6)]
    for _ in range(workers):
        run_worker(places_db, make_pipeline(places_db))
    for job in jobs:
        final = wait_until_done(places_db, job.id)
        assert final.status == JobStatus.completed and final.attempts == 1
        kinds = [e.kind for e in list_events(places_db, job.id)]
        assert kinds.count("claimed") == 1 and "taken_over" not in kinds


@pytest.mark.postgres
def test_campaign_runs_the_same_on_postgresql(pg_db: Database, run_worker: Callable[..., Worker]) -> None:
    from prospectpro.places.importer import ensure_bundled_places

    ensure_bundled_places(pg_db)
    job = submit(pg_db, max_results=20)
    for _ in range(2):
        run_worker(pg_db, make_pipeline(pg_db))
    final = wait_until_done(pg_db, job.id)
    assert final.status == JobStatus.completed and final.metrics["leads"] == 20
    events = list_events(pg_db, job.id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    leads, _ = list_leads(pg_db, final.campaign_id, LOCAL_USER_ID)
    source = osm_tags()
    assert all(lead["business_name"] == source[lead["sources"][0]]["name"] for lead in leads)
