"""A tiny fake provider for the gate's tests: its spec, its simulator routes, a call context."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from prospectpro.config import Settings
from prospectpro.domain.campaign import Tier
from prospectpro.gate.core import Gate
from prospectpro.gate.types import GateRequest, ProviderSpec
from prospectpro.providers.protocols import CallContext
from prospectpro.store.db import Database
from prospectpro.store.schema import LOCAL_USER_ID, users
from tests.sim.server import SimRequest, SimResponse, Simulator

KEY = "sk-fake-SECRET-9f8e7d"  # the fake provider's API key: must never be stored or logged
PRICE = Decimal("0.0350")
SETTINGS = Settings(import_bundled_places=False)


@dataclass
class FakeState:
    searches: int = 0
    seen_keys: list[str] = field(default_factory=list)


def install(sim: Simulator) -> FakeState:
    """GET /v1/search?q=… answers {"q", "results"} when the key is right; 401 (echoing the key) when not."""
    state = FakeState()

    def search(request: SimRequest) -> SimResponse:
        key = request.arg("key") or ""
        state.seen_keys.append(key)
        if key != KEY:
            return SimResponse(401, {"error": {"message": f"API key not valid: {key}"}})
        state.searches += 1
        return SimResponse(200, {"q": request.arg("q"), "results": [f"{request.arg('q')}-{state.searches}"]})

    sim.route("GET", "/v1/search", search)
    return state


def fake_spec(sim: Simulator | str, **changes: Any) -> ProviderSpec:
    base = ProviderSpec(
        name="fake",
        base_url=sim if isinstance(sim, str) else sim.url,
        secrets=(KEY,),
        params={"key": KEY},
        connect_timeout=1.0,
        read_timeout=1.0,
        total_timeout=2.0,
        max_attempts=3,
        backoff_base=0.01,
        backoff_max=5.0,
        breaker_failures=3,
        breaker_seconds=60.0,
        paid=True,
    )
    return replace(base, **changes)


@dataclass
class Sleeps:
    """An injected sleep: records the waits instead of sleeping."""

    waits: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 12, 2, 12, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now


def make_gate(db: Database, spec: ProviderSpec, **kwargs: Any) -> Gate:
    return Gate(db, SETTINGS, [spec], **kwargs)


def context(gate: Gate, *, owner_id: str = LOCAL_USER_ID, job_id: str | None = None, budget: str = "1.00",
            campaign_id: str | None = None, lease_token: int | None = None) -> CallContext:
    return CallContext(
        job_id=job_id or str(uuid.uuid4()),
        owner_id=owner_id,
        tier=Tier.professional,
        wanted=10,
        budget_limit=Decimal(budget),
        gate=gate,
        campaign_id=campaign_id,
        lease_token=lease_token,
    )


def search(ctx: CallContext, q: str, *, max_cost: Decimal = PRICE, reuse_days: float | None = None) -> Any:
    """One paid search through the gate, as a provider makes it."""
    gate = ctx.gate
    return gate.call(
        ctx,
        GateRequest("fake", "search", key={"q": q}, max_cost=max_cost, reuse_days=reuse_days),
        lambda: gate.http("fake").request("GET", "/v1/search", params={"q": q}).json(),
    )


def add_user(db: Database, *, monthly_budget: str | None = None) -> str:
    user_id = str(uuid.uuid4())
    with db.write() as conn:
        conn.execute(
            users.insert().values(
                id=user_id, name="u", kind="user", created_at=datetime.now(UTC),
                monthly_budget=None if monthly_budget is None else Decimal(monthly_budget),
            )
        )
    return user_id
