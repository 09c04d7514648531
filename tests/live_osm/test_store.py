"""Coverage records, the geocode cache, extract bounds, the Overpass lease and daily cap, on both stores."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select

from prospectpro.domain.area import Area
from prospectpro.domain.clock import utcnow
from prospectpro.gate.errors import ProviderError, ProviderErrorKind
from prospectpro.jobs.worker import Worker
from prospectpro.places import coverage
from prospectpro.places.importer import LIVE_DATASET, ensure_bundled_places, store_live_places
from prospectpro.providers import overpass
from prospectpro.providers.overpass import Element
from prospectpro.store.db import Database
from prospectpro.store.schema import datasets, places
from tests.live_osm.conftest import World, submit, wait_until_done

AUSTIN = Area(30.27, -97.74, 25000, "Austin, Texas, United States", "US", (30.1, -97.94, 30.52, -97.56), "relation/1")
DOWNTOWN = Area(30.267, -97.743, 800, "30.2670, -97.7430 (r=800 m)", None)


def test_coverage_is_per_tags_and_area(any_db: Database) -> None:
    dentists = ("amenity=dentist", "healthcare=dentist")
    coverage.record_coverage(any_db, source="overpass", tags=dentists, area=AUSTIN, elements=3)

    def covered(tags: tuple[str, ...], area: Area, days: float = 7) -> bool:
        return coverage.covering(any_db, source="overpass", tags=tags, area=area, max_age_days=days) is not None

    assert covered(dentists, AUSTIN) and covered(("healthcare=dentist",), AUSTIN)  # a subset of the tags asked
    assert not covered(("amenity=cafe",), AUSTIN)  # stored dentists do not cover cafés
    assert not covered(dentists, AUSTIN, days=0)
    # A boundary query covers that place only, not everything in its box.
    assert not covered(dentists, DOWNTOWN)
    box = Area(30.27, -97.74, 5000, "box", None)
    coverage.record_coverage(any_db, source="overpass", tags=["amenity=cafe"], area=box, elements=0)
    assert covered(("amenity=cafe",), DOWNTOWN)  # inside the box asked
    assert not covered(("amenity=cafe",), Area(30.27, -97.74, 9000, "wider", None))
    # The same (tags, area) again replaces the record; old records stop counting.
    coverage.record_coverage(any_db, source="overpass", tags=dentists, area=AUSTIN, elements=4)
    later = utcnow() + timedelta(days=8)
    assert coverage.covering(any_db, source="overpass", tags=dentists, area=AUSTIN, max_age_days=7, now=later) is None
    found = coverage.covering(any_db, source="overpass", tags=dentists, area=AUSTIN, max_age_days=7)
    assert found is not None and found.elements == 4


def test_the_geocode_cache(any_db: Database) -> None:
    assert coverage.cached_geocode(any_db, "Austin, TX", max_age_days=30) is None
    coverage.store_geocode(any_db, "Austin, TX", [{"osm_id": 1}], provider="nominatim")
    coverage.store_geocode(any_db, "austin tx", [{"osm_id": 2}], provider="nominatim")  # the same question
    assert coverage.cached_geocode(any_db, "AUSTIN,  TX", max_age_days=30) == [{"osm_id": 2}]
    later = utcnow() + timedelta(days=31)
    assert coverage.cached_geocode(any_db, "Austin, TX", max_age_days=30, now=later) is None
    assert coverage.cached_geocode(any_db, "Austin, TX", max_age_days=None, now=later) == [{"osm_id": 2}]


def test_extract_bounds_and_what_is_served_locally(any_db: Database) -> None:
    ensure_bundled_places(any_db)
    with any_db.read() as conn:
        row = conn.execute(select(datasets.c.south, datasets.c.west, datasets.c.north, datasets.c.east)).one()
    assert row.south == pytest.approx(60.164155) and row.east == pytest.approx(24.9534145, abs=1e-3)
    assert coverage.inside_extract(any_db, 60.17, 24.94) and not coverage.inside_extract(any_db, 30.27, -97.74)
    assert coverage.served_locally(any_db, Area(60.17, 24.94, 15000, "Helsinki", "FI"))
    assert not coverage.served_locally(any_db, DOWNTOWN) and not coverage.served_locally(any_db, AUSTIN)


def test_live_places_join_the_index_and_keep_an_extracts_rows(any_db: Database) -> None:
    ensure_bundled_places(any_db)
    with any_db.read() as conn:
        imported = conn.execute(select(places.c.osm_type, places.c.osm_id, places.c.tags, places.c.dataset)).first()
    assert imported is not None
    refreshed = Element(imported.osm_type, imported.osm_id, 60.17, 24.94, {**imported.tags, "phone": "+358 1"})
    new = Element("n", 77, 30.27, -97.74, {"amenity": "cafe", "name": "Live Café"})
    unnamed = Element("n", 78, 30.27, -97.74, {"amenity": "cafe"})
    assert store_live_places(any_db, [refreshed, new, unnamed]) == 2
    with any_db.read() as conn:
        rows = {(r.osm_type, r.osm_id): r for r in conn.execute(select(places))}
    assert rows[(imported.osm_type, imported.osm_id)].dataset == imported.dataset  # still the extract's
    assert rows[(imported.osm_type, imported.osm_id)].tags["phone"] == "+358 1"
    assert rows[("n", 77)].dataset == LIVE_DATASET and ("n", 78) not in rows


def test_the_lease_admits_one_holder_until_it_expires(any_db: Database) -> None:
    assert coverage.take_lease(any_db, "overpass:public", "a", 60)
    assert not coverage.take_lease(any_db, "overpass:public", "b", 60)
    assert coverage.take_lease(any_db, "overpass:public", "a", 60)  # its holder renews it
    assert coverage.take_lease(any_db, "overpass:public", "b", 60, now=utcnow() + timedelta(seconds=61))
    coverage.release_lease(any_db, "overpass:public", "a")  # not a's any more: nothing happens
    assert not coverage.take_lease(any_db, "overpass:public", "c", 60)
    coverage.release_lease(any_db, "overpass:public", "b")
    assert coverage.take_lease(any_db, "overpass:public", "c", 60)


def test_the_daily_count(any_db: Database) -> None:
    assert [coverage.count_call(any_db, "overpass", 2) for _ in range(3)] == [1, 2, None]
    assert coverage.calls_today(any_db, "overpass") == 2
    assert coverage.count_call(any_db, "overpass", 2, now=utcnow() + timedelta(days=1)) == 1  # a new day
    assert coverage.count_call(any_db, "overpass", None) == 3  # no cap


@pytest.fixture
def public_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulator's host counts as a public instance: the lease and the daily cap apply."""
    monkeypatch.setattr(overpass, "PUBLIC_HOSTS", overpass.PUBLIC_HOSTS | {"127.0.0.1"})


def test_the_public_instance_runs_one_query_at_a_time(world: World, public_instance: None) -> None:
    world.sim.set_latency("/api/interpreter", 0.3)
    spans: list[tuple[float, float]] = []
    errors: list[BaseException] = []

    def one(area: Area) -> None:
        try:
            started = time.monotonic()
            overpass.fetch(world.db, world.settings, world.gate.http("overpass").request, ["amenity=cafe"], area)
            spans.append((started, time.monotonic()))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=one, args=(Area(30.27, -97.74 + i / 100, 500, f"a{i}", None),)) for i in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert errors == [] and len(spans) == 3
    calls = sorted(world.sim.calls_to("/api/interpreter"), key=lambda c: c.at)
    gaps = [b.at - a.at for a, b in zip(calls, calls[1:], strict=False)]
    assert min(gaps) >= 0.28, gaps  # each waited for the one before to finish
    assert coverage.calls_today(world.db, "overpass") == 3


def test_the_public_instance_daily_cap(world: World, public_instance: None) -> None:
    capped = world.settings.model_copy(update={"overpass_daily_limit": 1})
    request = world.gate.http("overpass").request
    overpass.fetch(world.db, capped, request, ["amenity=cafe"], DOWNTOWN)
    with pytest.raises(ProviderError) as err:
        overpass.fetch(world.db, capped, request, ["amenity=bar"], DOWNTOWN)
    assert err.value.kind == ProviderErrorKind.quota_exhausted and "daily limit of 1" in err.value.message
    assert world.sim.count("/api/interpreter") == 1
    assert overpass.is_public("https://overpass-api.de") and not overpass.is_public("http://overpass.internal:12345")


def test_an_instance_of_your_own_has_no_cap_and_no_lease(world: World) -> None:
    own = world.settings.model_copy(update={"overpass_daily_limit": 0})  # the simulator is not a public host
    overpass.fetch(world.db, own, world.gate.http("overpass").request, ["amenity=cafe"], DOWNTOWN)
    assert world.sim.count("/api/interpreter") == 1 and coverage.calls_today(world.db, "overpass") == 0


def test_a_campaign_through_the_capped_public_instance_names_the_cap(
    world: World, public_instance: None, run_worker: Callable[[World], Worker]
) -> None:
    world.settings = world.settings.model_copy(update={"overpass_daily_limit": 0})
    run_worker(world)
    done = wait_until_done(world.db, submit(world, "dentist", "Austin").id)
    [failed] = done.metrics["failed_sources"]
    assert failed["reason"].startswith("quota_exhausted: the daily limit of 0 queries")
    assert world.sim.count("/api/interpreter") == 0
