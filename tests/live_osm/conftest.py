"""A small world only the simulators know: Austin, TX (dentists, cafés), two Springfields, Paris, Texas."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from prospectpro.bootstrap import build_gate, build_worker
from prospectpro.config import Settings
from prospectpro.domain.campaign import CampaignRequest
from prospectpro.gate.core import Gate
from prospectpro.jobs.model import Job
from prospectpro.jobs.worker import Worker
from prospectpro.places.importer import ensure_bundled_places
from prospectpro.providers.nominatim import ensure_geocoded
from prospectpro.services import campaigns as campaign_service
from prospectpro.services.submissions import submit_campaign
from prospectpro.store.db import Database
from prospectpro.store.schema import LOCAL_USER_ID
from tests.pipeline.conftest import wait_until_done  # noqa: F401  (the live-OSM tests use it from here)
from tests.sim import nominatim as nominatim_sim
from tests.sim import overpass as overpass_sim
from tests.sim.server import Simulator

AUSTIN_REL = 113314
AUSTIN_BOX = (30.0986, -97.9384, 30.5168, -97.5614)
AUSTIN = nominatim_sim.place(
    "Austin", 30.2711286, -97.7436995, box=AUSTIN_BOX, country="United States", country_code="us",
    state="Texas", importance=0.75, osm_id=AUSTIN_REL,
)  # fmt: skip
PARIS_FR = nominatim_sim.place(
    "Paris", 48.8588897, 2.320041, box=(48.8155755, 2.224122, 48.902156, 2.4697602), country="France",
    country_code="fr", state="Île-de-France", importance=0.88, osm_id=7444,
)  # fmt: skip
PARIS_TX = nominatim_sim.place(
    "Paris", 33.6617962, -95.555513, box=(33.6, -95.63, 33.72, -95.47), country="United States",
    country_code="us", state="Texas", importance=0.45, osm_id=115463,
)  # fmt: skip
SPRINGFIELD_IL = nominatim_sim.place(
    "Springfield", 39.7990175, -89.6439575, box=(39.65, -89.77, 39.87, -89.55), country="United States",
    country_code="us", state="Illinois", importance=0.61, osm_id=123,
)  # fmt: skip
SPRINGFIELD_MO = nominatim_sim.place(
    "Springfield", 37.2081729, -93.2922715, box=(37.09, -93.41, 37.27, -93.18), country="United States",
    country_code="us", state="Missouri", importance=0.57, osm_id=124,
)  # fmt: skip
TEXAS = nominatim_sim.place(
    "Texas", 31.2638905, -98.5456116, box=(25.8371638, -106.6456461, 36.5007041, -93.5080389),
    country="United States", country_code="us", importance=0.85, osm_id=114690, addresstype="state",
)  # fmt: skip

DENTISTS = [
    overpass_sim.node(
        9001, 30.2672, -97.7431, amenity="dentist", name="Congress Avenue Dental", phone="+1 512 555 0101",
        website="https://congressdental.example", addr_street="Congress Avenue", addr_housenumber="700",
        addr_city="Austin", addr_postcode="78701",
    ),
    overpass_sim.way(
        9002, 30.2850, -97.7335, healthcare="dentist", name="Hyde Park Smiles", contact_phone="+1 512 555 0102",
        contact_website="https://hydeparksmiles.example",
    ),
    overpass_sim.node(9003, 30.2500, -97.7500, amenity="dentist", healthcare="dentist", name="South Lamar Dentistry",
                      phone="+1 512 555 0103"),
    overpass_sim.node(9004, 30.30, -97.70, amenity="dentist"),  # no name: no business to list
]  # fmt: skip
CAFES = [
    overpass_sim.node(9101, 30.2660, -97.7420, amenity="cafe", name="Bouldin Beans", website="https://bb.example"),
    overpass_sim.node(9102, 30.2700, -97.7400, amenity="cafe", name="Sixth Street Coffee", phone="+1 512 555 0201"),
]
# Outside Austin's box: never an Austin lead.
ELSEWHERE = [overpass_sim.node(9201, 29.4241, -98.4936, amenity="dentist", name="San Antonio Dental")]


@dataclass
class World:
    sim: Simulator
    nominatim: nominatim_sim.NominatimSim
    overpass: overpass_sim.OverpassSim
    settings: Settings
    db: Database
    gate: Gate


def live_settings(tmp_path: Path, base_url: str, **extra: Any) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        nominatim_base_url=base_url,
        overpass_base_url=base_url,
        poll_interval=0.05,
        lease_seconds=5.0,
        **extra,
    )


def install_world(sim: Simulator) -> tuple[nominatim_sim.NominatimSim, overpass_sim.OverpassSim]:
    geo = nominatim_sim.install(sim)
    geo.add("Austin, TX", AUSTIN)
    geo.add("Austin", AUSTIN)
    geo.add("Paris", PARIS_FR, PARIS_TX)
    geo.add("Springfield", SPRINGFIELD_IL, SPRINGFIELD_MO)
    geo.add("Springfield, Illinois", SPRINGFIELD_IL)
    geo.add("Texas", TEXAS)
    over = overpass_sim.install(sim, [*DENTISTS, *CAFES, *ELSEWHERE])
    over.add_area(3_600_000_000 + AUSTIN_REL, AUSTIN_BOX)
    return geo, over


@pytest.fixture
def world(sim: Simulator, db: Database, tmp_path: Path) -> Iterator[World]:
    """The SQLite store with the bundled extract, and live OSM pointing at the simulators."""
    ensure_bundled_places(db)
    geo, over = install_world(sim)
    settings = live_settings(tmp_path, sim.url)
    gate = build_gate(db, settings)
    yield World(sim, geo, over, settings, db, gate)
    gate.close()


@pytest.fixture
def pg_world(sim: Simulator, pg_db: Database, tmp_path: Path) -> Iterator[World]:
    ensure_bundled_places(pg_db)
    geo, over = install_world(sim)
    settings = live_settings(tmp_path, sim.url)
    gate = build_gate(pg_db, settings)
    yield World(sim, geo, over, settings, pg_db, gate)
    gate.close()


def submit(w: World, business_type: str, location: str, **fields: Any) -> Job:
    """As the CLI and the API do: geocode first (outside any transaction), then submit."""
    ensure_geocoded(w.db, w.settings, w.gate, location)
    request = CampaignRequest.model_validate(
        {"business_type": business_type, "location": location, "min_score": 0, "max_results": 50, **fields}
    )
    return submit_campaign(w.db, w.settings, LOCAL_USER_ID, request).job


@pytest.fixture
def run_worker() -> Iterator[Callable[[World], Worker]]:
    started: list[Worker] = []

    def start(w: World) -> Worker:
        worker = build_worker(w.db, w.settings).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if not worker.stopped:
            worker.stop(timeout=10)




def leads_of(db: Database, job: Job) -> list[dict[str, Any]]:
    assert job.campaign_id is not None
    return campaign_service.list_leads(db, job.campaign_id, LOCAL_USER_ID)[0]
