"""Geocoding at submit: cached, polite, ambiguous places listed, too large ones refused, outages a clear 503."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from prospectpro import __version__
from prospectpro.api.app import create_app
from prospectpro.bootstrap import open_database
from prospectpro.errors import InvalidInput
from prospectpro.places.locations import NeedsGeocoding, resolve_location
from prospectpro.providers.nominatim import (
    AmbiguousLocation,
    AreaTooLarge,
    GeocoderUnavailable,
    choose,
    ensure_geocoded,
)
from prospectpro.store.schema import discovery_jobs
from tests.live_osm.conftest import PARIS_FR, SPRINGFIELD_IL, World, install_world, live_settings
from tests.sim.server import SimResponse, Simulator


def test_a_geocoded_place_is_asked_once_then_read_from_the_cache(world: World) -> None:
    with pytest.raises(NeedsGeocoding):  # the writer never asks the network itself
        resolve_location(world.db, "Austin, TX", settings=world.settings)
    area = ensure_geocoded(world.db, world.settings, world.gate, "Austin, TX")
    assert area is not None and area.label == "Austin, Texas, United States"
    assert resolve_location(world.db, "austin tx", settings=world.settings) == area  # the same question
    assert ensure_geocoded(world.db, world.settings, world.gate, "AUSTIN, TX") == area
    assert world.nominatim.searches == ["Austin, TX"]
    call = world.sim.calls_to("/search")[0]
    assert call.arg("format") == "jsonv2" and call.arg("addressdetails") == "1"
    agent = call.headers["user-agent"]
    assert agent.startswith(f"ProspectPro/{__version__}") and "python-httpx" not in agent


def test_the_user_agent_names_the_contact_email(sim: Simulator, db: object, tmp_path: Path) -> None:
    from prospectpro.bootstrap import build_gate

    install_world(sim)
    settings = live_settings(tmp_path, sim.url, contact_email="ops@example.org")
    gate = build_gate(db, settings)  # type: ignore[arg-type]
    try:
        ensure_geocoded(db, settings, gate, "Austin")  # type: ignore[arg-type]
    finally:
        gate.close()
    assert "ops@example.org" in sim.calls_to("/search")[0].headers["user-agent"]


def test_a_local_name_or_coordinates_ask_nobody(world: World) -> None:
    assert ensure_geocoded(world.db, world.settings, world.gate, "Helsinki") is None
    assert ensure_geocoded(world.db, world.settings, world.gate, "Kluuvi, Helsinki") is None
    assert ensure_geocoded(world.db, world.settings, world.gate, "30.27,-97.74,2000") is None
    assert world.sim.calls == []


def test_an_ambiguous_place_lists_its_candidates(world: World) -> None:
    with pytest.raises(AmbiguousLocation) as err:
        ensure_geocoded(world.db, world.settings, world.gate, "Springfield")
    assert err.value.details["candidates"] == [
        "Springfield, Illinois, United States",
        "Springfield, Missouri, United States",
    ]
    assert "Springfield, Illinois, United States" in err.value.message and err.value.http_status == 422
    # Qualified, it is one place.
    area = ensure_geocoded(world.db, world.settings, world.gate, "Springfield, Illinois")
    assert area is not None and area.osm_ref == "relation/123"


def test_a_clear_winner_is_taken(world: World) -> None:
    area = ensure_geocoded(world.db, world.settings, world.gate, "Paris")  # 0.88 against 0.45
    assert area is not None and area.country == "FR" and area.osm_ref == "relation/7444"
    assert area.label == "Paris, Île-de-France, France"


def test_the_importance_gap_is_a_setting(world: World) -> None:
    wide = world.settings.model_copy(update={"ambiguity_importance_gap": 0.5})
    with pytest.raises(AmbiguousLocation):
        choose("Paris", [PARIS_FR, {**SPRINGFIELD_IL, "importance": 0.5}], wide)
    # Same country and region: never ambiguous, whatever the importances.
    texas_twins = [SPRINGFIELD_IL, {**SPRINGFIELD_IL, "osm_id": 999, "importance": 0.6}]
    assert choose("Springfield", texas_twins, world.settings).osm_ref == "relation/123"


def test_a_too_large_area_is_refused(world: World) -> None:
    with pytest.raises(AreaTooLarge) as err:
        ensure_geocoded(world.db, world.settings, world.gate, "Texas")
    assert "name a city or a district" in err.value.message and err.value.details["area_km2"] > 2500
    # A radius over the same bound, outside every imported extract, likewise.
    with pytest.raises(AreaTooLarge, match="at most"):
        resolve_location(world.db, "30.27,-97.74,40000", settings=world.settings)
    # Inside the bundled extract the local data serves it, as before.
    assert resolve_location(world.db, "60.17,24.94,40000", settings=world.settings).radius_m == 40000


def test_an_unknown_place_says_so(world: World) -> None:
    with pytest.raises(InvalidInput, match="neither the local places data nor OpenStreetMap's Nominatim"):
        ensure_geocoded(world.db, world.settings, world.gate, "Atlantis Under The Sea")


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        (SimResponse(403, "<html>blocked</html>"), "HTTP 403"),
        (SimResponse(429, "slow down", headers={"Retry-After": "7"}), "HTTP 429"),
    ],
)
def test_nominatim_refusing_is_a_clear_unavailable(world: World, fault: SimResponse, said: str) -> None:
    world.sim.fail("/search", fault, times=5)
    with pytest.raises(GeocoderUnavailable) as err:
        ensure_geocoded(world.db, world.settings, world.gate, "Austin")
    assert said in err.value.message and err.value.http_status == 503 and err.value.exit_code == 2
    assert err.value.retry_after >= 1
    if "429" in said:
        assert err.value.retry_after == 7
    assert world.nominatim.searches == []  # never answered: nothing cached


@pytest.fixture
def api(sim: Simulator, tmp_path: Path) -> Iterator[tuple[TestClient, Simulator]]:
    install_world(sim)
    settings = live_settings(tmp_path, sim.url)
    with TestClient(create_app(settings, workers=0, db=open_database(settings))) as client:
        yield client, sim


def test_the_api_answers_ambiguity_and_size_with_the_json_envelope(api: tuple[TestClient, Simulator]) -> None:
    client, _ = api
    ambiguous = client.post("/api/v1/campaigns", json={"business_type": "cafe", "location": "Springfield"})
    assert ambiguous.status_code == 422
    error = ambiguous.json()["error"]
    assert error["code"] == "ambiguous_location"
    assert error["details"]["candidates"][0] == "Springfield, Illinois, United States"
    too_large = client.post("/api/v1/campaigns", json={"business_type": "cafe", "location": "Texas"})
    assert too_large.status_code == 422 and too_large.json()["error"]["code"] == "area_too_large"
    db = client.app.state.db  # type: ignore[attr-defined]
    with db.read() as conn:
        assert conn.execute(select(func.count()).select_from(discovery_jobs)).scalar() == 0  # nothing enqueued
    winner = client.post("/api/v1/campaigns", json={"business_type": "cafe", "location": "Paris"})
    assert winner.status_code == 202
    job = client.get(winner.json()["urls"]["job"]).json()
    assert job["config"]["area"]["label"] == "Paris, Île-de-France, France"
    assert job["config"]["area"]["osm_ref"] == "relation/7444"


def test_the_api_answers_503_with_retry_after_when_nominatim_is_away(api: tuple[TestClient, Simulator]) -> None:
    client, sim = api
    sim.fail("/search", SimResponse(close_without_answer=True), times=10)
    answer = client.post("/api/v1/campaigns", json={"business_type": "cafe", "location": "Austin"})
    assert answer.status_code == 503 and int(answer.headers["Retry-After"]) >= 1
    assert answer.json()["error"]["code"] == "geocoder_unavailable"
    # The local data still serves its places.
    assert client.post("/api/v1/campaigns", json={"business_type": "cafe", "location": "Helsinki"}).status_code == 202


def test_a_stale_answer_is_asked_again(world: World) -> None:
    from datetime import timedelta

    from prospectpro.domain.clock import utcnow
    from prospectpro.store.schema import geocode_cache

    with pytest.raises(AmbiguousLocation):
        ensure_geocoded(world.db, world.settings, world.gate, "Springfield")
    assert ensure_geocoded(world.db, world.settings, world.gate, "Springfield") is None  # fresh: nothing to ask
    with pytest.raises(AmbiguousLocation):  # and the writer refuses it from the cache
        resolve_location(world.db, "Springfield", settings=world.settings)
    assert world.nominatim.searches == ["Springfield"]
    with world.db.write() as conn:
        conn.execute(geocode_cache.update().values(fetched_at=utcnow() - timedelta(days=31)))
    world.nominatim.add("Springfield", SPRINGFIELD_IL)  # the other one was renamed meanwhile
    area = ensure_geocoded(world.db, world.settings, world.gate, "Springfield")
    assert area is not None and area.osm_ref == "relation/123"
    assert world.nominatim.searches == ["Springfield", "Springfield"]
