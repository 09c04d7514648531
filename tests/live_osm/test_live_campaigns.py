"""Discover anywhere: a place only the simulators know, geocoded once, one Overpass query, then the index."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import func, select

from prospectpro.domain.clock import utcnow
from prospectpro.jobs.worker import Worker
from prospectpro.places.importer import LIVE_DATASET
from prospectpro.store.schema import api_calls, place_coverage, places
from tests.live_osm.conftest import AUSTIN_REL, World, leads_of, submit, wait_until_done


def digits(phone: str | None) -> str:
    """The number as served, whatever the lead's formatting (leads carry phones in international form)."""
    return re.sub(r"\D", "", phone or "")


def test_a_campaign_in_a_place_only_the_simulator_knows(world: World, run_worker: Callable[[World], Worker]) -> None:
    job = submit(world, "dentist", "Austin, TX")
    # The place chosen is recorded in the job's config (and shown on the page and in the CLI).
    area = job.config["area"]
    assert area["osm_ref"] == f"relation/{AUSTIN_REL}" and area["label"] == "Austin, Texas, United States"
    assert area["country"] == "US" and len(area["bounds"]) == 4
    assert world.nominatim.searches == ["Austin, TX"]

    run_worker(world)
    done = wait_until_done(world.db, job.id)
    assert done.status.value == "completed", done.error
    assert done.metrics["failed_sources"] == [] and done.metrics["source_counts"] == {"osm": 3}

    # One Overpass query, for both dentist tags, inside Austin's boundary area.
    assert len(world.overpass.queries) == 1
    query = world.overpass.queries[0]
    assert query.startswith("[out:json][timeout:") and "[maxsize:" in query and query.endswith("out center tags;")
    assert f"area(id:{3_600_000_000 + AUSTIN_REL})->.a;" in query
    assert 'nwr["amenity"="dentist"](area.a);' in query and 'nwr["healthcare"="dentist"](area.a);' in query

    leads = {lead["business_name"]: lead for lead in leads_of(world.db, done)}
    assert set(leads) == {"Congress Avenue Dental", "Hyde Park Smiles", "South Lamar Dentistry"}
    congress = leads["Congress Avenue Dental"]
    assert (
        digits(congress["phone"]) == digits("+1 512 555 0101")
        and congress["website"] == "https://congressdental.example"
    )
    assert congress["sources"][0] == "osm:node/9001"
    hyde = leads["Hyde Park Smiles"]  # a way: its centre, its contact:* tags
    assert digits(hyde["phone"]) == digits("+1 512 555 0102") and hyde["website"] == "https://hydeparksmiles.example"
    assert hyde["sources"][0] == "osm:way/9002" and (hyde["latitude"], hyde["longitude"]) == (30.2850, -97.7335)
    assert leads["South Lamar Dentistry"]["website"] is None  # nothing invented

    # Stored in the places index as live data, with a coverage record; ledgered as a free call.
    with world.db.read() as conn:
        assert (
            conn.execute(select(func.count()).select_from(places).where(places.c.dataset == LIVE_DATASET)).scalar() == 3
        )
        record = conn.execute(select(place_coverage)).one()
        # (the website step ledgers its own visits to the dentists' sites, which do not resolve here)
        calls = conn.execute(
            select(api_calls.c.provider, api_calls.c.status, api_calls.c.cost).where(api_calls.c.provider != "website")
        ).all()
    assert record.source == "overpass" and record.tags_key == "amenity=dentist,healthcare=dentist"
    assert record.area_ref == f"relation/{AUSTIN_REL}" and record.elements == 3
    assert [(c.provider, c.status, c.cost) for c in calls] == [("overpass", "ok", 0)]

    # The same type and place again, within the cache time: no Overpass call, no geocoding either.
    again = wait_until_done(world.db, submit(world, "dentist", "Austin, TX", include_delivered=True).id)
    assert again.status.value == "completed" and len(world.overpass.queries) == 1
    assert world.nominatim.searches == ["Austin, TX"]
    assert {lead["business_name"] for lead in leads_of(world.db, again)} == set(leads)

    # A different type in the same place: one more query, for that type only.
    cafes = wait_until_done(world.db, submit(world, "cafe", "Austin, TX").id)
    assert cafes.status.value == "completed" and len(world.overpass.queries) == 2
    assert '"amenity"="cafe"' in world.overpass.queries[1] and "dentist" not in world.overpass.queries[1]
    assert {lead["business_name"] for lead in leads_of(world.db, cafes)} == {"Bouldin Beans", "Sixth Street Coffee"}


def test_coverage_expires_after_the_discovery_cache_days(world: World, run_worker: Callable[[World], Worker]) -> None:
    run_worker(world)
    assert wait_until_done(world.db, submit(world, "dentist", "Austin").id).status.value == "completed"
    with world.db.write() as conn:  # a week and a day later
        conn.execute(place_coverage.update().values(fetched_at=utcnow() - timedelta(days=8)))
    assert wait_until_done(world.db, submit(world, "dentist", "Austin").id).status.value == "completed"
    assert len(world.overpass.queries) == 2


def test_the_bundled_place_stays_local_with_live_osm_on(world: World, run_worker: Callable[[World], Worker]) -> None:
    run_worker(world)
    done = wait_until_done(world.db, submit(world, "cafe", "Helsinki", max_results=20, min_score=50).id)
    assert done.status.value == "completed" and done.metrics["source_counts"]["osm"] > 0
    assert world.sim.calls == []  # neither Nominatim nor Overpass was asked


def test_coordinates_outside_every_extract_go_live_by_their_box(
    world: World, run_worker: Callable[[World], Worker]
) -> None:
    run_worker(world)
    done = wait_until_done(world.db, submit(world, "cafe", "30.268,-97.741,1500").id)
    assert done.status.value == "completed"
    assert world.nominatim.searches == []  # coordinates need no geocoding
    assert len(world.overpass.queries) == 1 and "area(" not in world.overpass.queries[0]
    assert {lead["business_name"] for lead in leads_of(world.db, done)} == {"Bouldin Beans", "Sixth Street Coffee"}


def test_a_live_campaign_on_postgresql(pg_world: World, run_worker: Callable[[World], Worker]) -> None:
    run_worker(pg_world)
    first = wait_until_done(pg_world.db, submit(pg_world, "dentist", "Austin, TX").id)
    assert first.status.value == "completed" and first.metrics["source_counts"] == {"osm": 3}
    second = wait_until_done(pg_world.db, submit(pg_world, "dentist", "Austin, TX", include_delivered=True).id)
    assert second.metrics["source_counts"] == {"osm": 3}
    assert len(pg_world.overpass.queries) == 1 and pg_world.nominatim.searches == ["Austin, TX"]
