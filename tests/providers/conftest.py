"""Google Places through the real gate, against the simulator (tests/sim/google.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import pytest

from prospectpro.config import Settings
from prospectpro.domain.area import Area
from prospectpro.domain.campaign import Tier
from prospectpro.gate.core import Gate
from prospectpro.providers import google_places
from prospectpro.providers.google_places import GooglePlacesSource
from prospectpro.providers.protocols import CallContext, DiscoveryQuery
from prospectpro.store.db import Database
from prospectpro.store.schema import LOCAL_USER_ID
from tests.sim import google as google_sim
from tests.sim.server import Simulator

KEY = "AIzaSy-sim-SECRET-key-4242"  # must never be stored or logged
HELSINKI = Area(latitude=60.1699, longitude=24.9384, radius_m=3000.0, label="Helsinki", country="FI")


def google_settings(sim: Simulator, **changes: Any) -> Settings:
    return Settings(
        import_bundled_places=False,
        google_places_api_key=KEY,
        google_places_base_url=sim.url,
        google_places_rate_per_second=1000.0,
        **changes,
    )


def fast_spec(settings: Settings) -> Any:
    """Google's spec with test-sized waits (the product's backoff is seconds)."""
    spec = google_places.spec(settings)
    assert spec is not None
    return replace(spec, backoff_base=0.01, backoff_max=0.05, connect_timeout=1.0, read_timeout=2.0,
                   total_timeout=3.0, max_attempts=3)


@dataclass
class GoogleRig:
    db: Database
    sim: Simulator
    state: google_sim.GoogleState
    settings: Settings
    gate: Gate
    source: GooglePlacesSource

    def ctx(self, *, wanted: int = 20, budget: str = "5", job_id: str | None = None,
            owner_id: str = LOCAL_USER_ID) -> CallContext:
        return CallContext(job_id=job_id or str(uuid.uuid4()), owner_id=owner_id, tier=Tier.professional,
                           wanted=wanted, budget_limit=Decimal(budget), gate=self.gate)

    def query(self, wanted: int = 20, area: Area = HELSINKI, type_name: str = "cafe") -> DiscoveryQuery:
        return DiscoveryQuery(tags=("amenity=cafe",), type_name=type_name, area=area, wanted=wanted)


@pytest.fixture
def google(db: Database, sim: Simulator) -> Iterator[GoogleRig]:
    state = google_sim.install(sim, google_sim.grid(60), api_key=KEY)
    settings = google_settings(sim)
    gate = Gate(db, settings, [fast_spec(settings)], sleep=lambda s: None)
    yield GoogleRig(db, sim, state, settings, gate, GooglePlacesSource(settings))
    gate.close()


# The campaign pipeline's fixtures (bundled places, workers run in this process).
from tests.pipeline.conftest import places_db  # noqa: E402, F401
