"""Shared set-up of the paid contact tests: Hunter and NeverBounce through the real gate, against the simulator."""

from __future__ import annotations

import uuid
from dataclasses import replace
from decimal import Decimal
from typing import Any

from prospectpro.config import Settings
from prospectpro.domain.campaign import Tier
from prospectpro.gate.core import Gate
from prospectpro.gate.types import ProviderSpec
from prospectpro.providers import hunter, neverbounce
from prospectpro.providers.protocols import CallContext
from prospectpro.store.db import Database
from prospectpro.store.schema import LOCAL_USER_ID
from tests.sim.server import Simulator

HUNTER_KEY = "sim-hunter-SECRET-1234"
NEVERBOUNCE_KEY = "secret_sim-neverbounce-5678"


def paid_settings(sim: Simulator, *, hunter_on: bool = True, neverbounce_on: bool = True, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "import_bundled_places": False,
        "hunter_base_url": sim.url,
        "hunter_rate_per_second": 1000.0,
        "neverbounce_base_url": sim.url,
        "neverbounce_rate_per_second": 1000.0,
        "neverbounce_poll_seconds": 0.02,
        "allow_private_websites": True,
        "website_host_delay": 0.0,
    }
    if hunter_on:
        values["hunter_api_key"] = HUNTER_KEY
    if neverbounce_on:
        values["neverbounce_api_key"] = NEVERBOUNCE_KEY
    return Settings(**{**values, **changes})


def fast(spec: ProviderSpec) -> ProviderSpec:
    """Test-sized waits (the product's backoff is seconds); no store-held per-minute limit."""
    return replace(spec, backoff_base=0.01, backoff_max=0.05, connect_timeout=1.0, read_timeout=2.0,
                   total_timeout=3.0, max_attempts=3, shared_per_minute=None)


def specs(settings: Settings, changes: dict[str, dict[str, Any]] | None = None) -> list[ProviderSpec]:
    out = []
    for module in (hunter, neverbounce):
        spec = module.spec(settings)
        if spec is not None:
            out.append(replace(fast(spec), **(changes or {}).get(spec.name, {})))
    try:  # helper G's website provider, when it has a spec of its own
        from prospectpro.providers import website

        make = getattr(website, "spec", None)
        spec = make(settings) if make is not None else None
        if spec is not None:
            out.append(spec)
    except ImportError:
        pass
    return out


def paid_gate(db: Database, settings: Settings, changes: dict[str, dict[str, Any]] | None = None,
              **kwargs: Any) -> Gate:
    """The real gate over the paid providers; ``changes``: per provider, spec fields to replace."""
    return Gate(db, settings, specs(settings, changes), **{"sleep": lambda s: None, **kwargs})


def context(gate: Gate, *, tier: Tier = Tier.professional, budget: str = "5", job_id: str | None = None,
            owner_id: str = LOCAL_USER_ID) -> CallContext:
    return CallContext(job_id=job_id or str(uuid.uuid4()), owner_id=owner_id, tier=tier, wanted=10,
                       budget_limit=Decimal(budget), gate=gate)
