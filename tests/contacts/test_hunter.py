"""Hunter.io v2 through the gate, against the simulator: each status Hunter documents, and its credit rule."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from prospectpro.gate.errors import ProviderError, ProviderErrorKind
from prospectpro.gate.prices import price
from prospectpro.providers import hunter
from prospectpro.store.db import Database
from prospectpro.store.ledger import provider_states
from prospectpro.store.schema import api_calls
from tests.contacts.paid import HUNTER_KEY, context, paid_gate, paid_settings
from tests.sim import hunter as hunter_sim
from tests.sim.server import Simulator

CREDIT = price("hunter.credit")


def _emails(n: int, domain: str = "cafe.example") -> list[dict[str, object]]:
    return [hunter_sim.email(f"role{i}@{domain}", confidence=90 - i) for i in range(n)]


def test_domain_search_costs_one_credit_per_ten_addresses_and_nothing_when_none(db: Database, sim: Simulator) -> None:
    state = hunter_sim.install(sim, {"cafe.example": _emails(12), "empty.example": []}, api_key=HUNTER_KEY)
    settings = paid_settings(sim)
    gate = paid_gate(db, settings)
    ctx = context(gate)
    found, cost, reused = hunter.domain_search(ctx, settings, "cafe.example", personal=False)
    assert [e.address for e in found[:2]] == ["role0@cafe.example", "role1@cafe.example"]
    assert len(found) == 10 and cost == CREDIT and not reused  # limit 10: one credit, never more
    none, cost_none, _ = hunter.domain_search(ctx, settings, "empty.example", personal=False)
    assert none == [] and cost_none == Decimal(0)
    assert state.credits_used == 1
    # The key travels in a header, never in what the ledger stores.
    assert sim.calls_to(hunter_sim.DOMAIN_SEARCH_PATH)[0].headers["x-api-key"] == HUNTER_KEY
    with db.read() as conn:
        rows = conn.execute(select(api_calls.c.request, api_calls.c.cost)).all()
    assert HUNTER_KEY not in str(rows)
    assert sorted(Decimal(str(r.cost)) for r in rows) == [Decimal(0), CREDIT]


def test_the_same_domain_is_never_searched_twice_by_one_owner(db: Database, sim: Simulator) -> None:
    state = hunter_sim.install(sim, {"cafe.example": _emails(3)}, api_key=HUNTER_KEY)
    settings = paid_settings(sim)
    gate = paid_gate(db, settings)
    hunter.domain_search(context(gate), settings, "cafe.example", personal=False)
    again, cost, reused = hunter.domain_search(context(gate), settings, "cafe.example", personal=False)  # next job
    assert reused and cost == 0 and len(again) == 3
    assert state.searches["cafe.example"] == 1


def test_hunter_verification_within_the_configured_days_counts(db: Database, sim: Simulator) -> None:
    hunter_sim.install(sim, {"cafe.example": [
        hunter_sim.email("fresh@cafe.example", verified=("2026-11-20", "valid")),
        hunter_sim.email("old@cafe.example", verified=("2020-01-01", "valid")),
        hunter_sim.email("risky@cafe.example", verified=("2026-11-20", "accept_all")),
    ]}, api_key=HUNTER_KEY)
    settings = paid_settings(sim, hunter_verified_days=90)
    found, _, _ = hunter.domain_search(context(paid_gate(db, settings)), settings, "cafe.example", personal=False)
    by = {e.address: e for e in found}
    assert by["fresh@cafe.example"].verified_status == "valid"
    assert by["fresh@cafe.example"].verified_on == "2026-11-20"
    assert by["old@cafe.example"].verified_status is None
    assert by["risky@cafe.example"].verified_status is None


def test_202_is_asked_again_and_counts_once(db: Database, sim: Simulator) -> None:
    state = hunter_sim.install(sim, api_key=HUNTER_KEY)
    state.pending["slow@cafe.example"] = 1
    settings = paid_settings(sim)
    status, cost = hunter.verify(context(paid_gate(db, settings)), settings, "slow@cafe.example")
    assert status == "valid" and cost == CREDIT * Decimal("0.5")
    assert sim.count(hunter_sim.VERIFIER_PATH) == 2 and state.verifications["slow@cafe.example"] == 1


def test_403_is_hunters_rate_limit_and_is_retried(db: Database, sim: Simulator) -> None:
    hunter_sim.install(sim, {"cafe.example": _emails(1)}, api_key=HUNTER_KEY)
    sim.fail(hunter_sim.DOMAIN_SEARCH_PATH, hunter_sim.error(403, "too_many_requests", "Rate limit"), times=1)
    settings = paid_settings(sim)
    found, _, _ = hunter.domain_search(context(paid_gate(db, settings)), settings, "cafe.example", personal=False)
    assert len(found) == 1 and sim.count(hunter_sim.DOMAIN_SEARCH_PATH) == 2


def test_429_credits_exhausted_stops_hunter_for_the_installation_until_the_reset(db: Database, sim: Simulator) -> None:
    state = hunter_sim.install(sim, {"a.example": _emails(1), "b.example": _emails(1)}, api_key=HUNTER_KEY,
                               credits=0)
    settings = paid_settings(sim, hunter_credits_reset_hours=12)
    gate = paid_gate(db, settings)
    with pytest.raises(ProviderError) as first:
        hunter.domain_search(context(gate), settings, "a.example", personal=False)
    assert first.value.kind == ProviderErrorKind.quota_exhausted
    assert sim.count(hunter_sim.DOMAIN_SEARCH_PATH) == 1  # not retried: retrying cannot bring credits back
    state.credits = None
    with pytest.raises(ProviderError) as second:  # another job, another domain: not called at all
        hunter.domain_search(context(gate), settings, "b.example", personal=False)
    assert second.value.kind == ProviderErrorKind.breaker_open
    assert sim.count(hunter_sim.DOMAIN_SEARCH_PATH) == 1
    with db.read() as conn:
        held = provider_states(conn)["hunter"]
    assert held.breaker_open_until is not None and "quota_exhausted" in (held.reason or "")
    hours = (held.breaker_open_until - held.updated_at).total_seconds() / 3600
    assert 11.9 < hours <= 12.0


def test_451_names_the_person_who_must_not_be_processed(db: Database, sim: Simulator) -> None:
    state = hunter_sim.install(sim, {"cafe.example": _emails(1)}, api_key=HUNTER_KEY)
    state.claimed.add("jane@cafe.example")
    state.claimed_domains.add("cafe.example")
    settings = paid_settings(sim)
    gate = paid_gate(db, settings)
    with pytest.raises(ProviderError) as error:
        hunter.domain_search(context(gate), settings, "cafe.example", personal=True)
    assert error.value.kind == ProviderErrorKind.forbidden
    assert hunter.claimed_address(error.value) == "jane@cafe.example"
    with pytest.raises(ProviderError) as verifier:
        hunter.verify(context(gate), settings, "jane@cafe.example")
    assert verifier.value.kind == ProviderErrorKind.forbidden
    assert gate.http("hunter").breaker.open_until is None  # one person's claim says nothing about Hunter


def test_401_opens_the_breaker_at_once(db: Database, sim: Simulator) -> None:
    hunter_sim.install(sim, {"cafe.example": _emails(1)}, api_key="another-key")
    settings = paid_settings(sim)
    gate = paid_gate(db, settings)
    with pytest.raises(ProviderError) as error:
        hunter.domain_search(context(gate), settings, "cafe.example", personal=False)
    assert error.value.kind == ProviderErrorKind.auth and "authentication_failed" in error.value.message
    with pytest.raises(ProviderError) as again:
        hunter.domain_search(context(gate), settings, "cafe.example", personal=False)
    assert again.value.kind == ProviderErrorKind.breaker_open
    assert sim.count(hunter_sim.DOMAIN_SEARCH_PATH) == 1
