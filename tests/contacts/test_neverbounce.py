"""NeverBounce v4 through the gate, against the simulator: errors inside HTTP 200, the result mapping, billing
of duplicates (the ledger's job), and the bulk jobs API."""

from __future__ import annotations

from decimal import Decimal

import pytest

from prospectpro.gate.errors import ProviderError, ProviderErrorKind
from prospectpro.providers import neverbounce
from prospectpro.store.db import Database
from tests.contacts.paid import NEVERBOUNCE_KEY, context, paid_gate, paid_settings
from tests.sim import neverbounce as nb_sim
from tests.sim.server import Simulator

PRICE = Decimal("0.008")


@pytest.mark.parametrize(
    ("result", "status"),
    [("valid", "valid"), ("invalid", "invalid"), ("catchall", "accept_all"), ("disposable", "disposable"),
     ("unknown", "unknown"), ("something-new", "unknown")],
)
def test_results_map_to_the_leads_email_status(db: Database, sim: Simulator, result: str, status: str) -> None:
    nb_sim.install(sim, {"a@cafe.example": result}, api_key=NEVERBOUNCE_KEY)
    settings = paid_settings(sim)
    got, cost, reused = neverbounce.check(context(paid_gate(db, settings)), settings, "a@cafe.example")
    assert (got, cost, reused) == (status, PRICE, False)
    assert got in neverbounce.STATUSES


def test_one_address_is_never_verified_twice_by_one_owner(db: Database, sim: Simulator) -> None:
    state = nb_sim.install(sim, api_key=NEVERBOUNCE_KEY)
    settings = paid_settings(sim)
    gate = paid_gate(db, settings)
    ctx = context(gate)
    neverbounce.check(ctx, settings, "a@cafe.example")
    neverbounce.check(ctx, settings, "a@cafe.example")  # the same job again (a retry)
    _, cost, reused = neverbounce.check(context(gate), settings, "a@cafe.example")  # the owner's next campaign
    assert reused and cost == 0
    assert state.billed == 1 and state.checks["a@cafe.example"] == 1


def test_auth_failure_inside_http_200_opens_the_breaker(db: Database, sim: Simulator) -> None:
    nb_sim.install(sim, api_key="secret_other")
    settings = paid_settings(sim)
    gate = paid_gate(db, settings)
    with pytest.raises(ProviderError) as error:
        neverbounce.check(context(gate), settings, "a@cafe.example")
    assert error.value.kind == ProviderErrorKind.auth and "auth_failure" in error.value.message
    assert NEVERBOUNCE_KEY not in str(error.value)
    with pytest.raises(ProviderError) as again:
        neverbounce.check(context(gate), settings, "b@cafe.example")
    assert again.value.kind == ProviderErrorKind.breaker_open
    assert sim.count(nb_sim.CHECK_PATH) == 1


@pytest.mark.parametrize("status", ["throttle_triggered", "temp_unavail"])
def test_throttle_and_temp_unavail_inside_http_200_are_retried(db: Database, sim: Simulator, status: str) -> None:
    nb_sim.install(sim, api_key=NEVERBOUNCE_KEY)
    sim.fail(nb_sim.CHECK_PATH, nb_sim.failure(status), times=1)
    settings = paid_settings(sim)
    got, _, _ = neverbounce.check(context(paid_gate(db, settings)), settings, "a@cafe.example")
    assert got == "valid" and sim.count(nb_sim.CHECK_PATH) == 2


def test_insufficient_credits_is_quota_exhausted(db: Database, sim: Simulator) -> None:
    nb_sim.install(sim, api_key=NEVERBOUNCE_KEY, credits=0)
    settings = paid_settings(sim)
    with pytest.raises(ProviderError) as error:
        neverbounce.check(context(paid_gate(db, settings)), settings, "a@cafe.example")
    assert error.value.kind == ProviderErrorKind.quota_exhausted


def test_general_failure_is_an_error_never_a_result(db: Database, sim: Simulator) -> None:
    nb_sim.install(sim, api_key=NEVERBOUNCE_KEY)
    sim.fail(nb_sim.CHECK_PATH, nb_sim.failure("general_failure", "Something went wrong"), times=1)
    settings = paid_settings(sim)
    with pytest.raises(ProviderError) as error:
        neverbounce.check(context(paid_gate(db, settings)), settings, "a@cafe.example")
    assert error.value.kind == ProviderErrorKind.bad_request


def test_the_bulk_jobs_api_creates_polls_and_reads_every_page(db: Database, sim: Simulator) -> None:
    addresses = [f"x{i}@cafe{i}.example" for i in range(1200)]  # two pages of results
    state = nb_sim.install(sim, {addresses[0]: "catchall", addresses[1]: "invalid"}, api_key=NEVERBOUNCE_KEY,
                           bulk_per_second=20000.0)
    settings = paid_settings(sim)
    gate = paid_gate(db, settings)
    results, cost = neverbounce.bulk_check(context(gate, budget="100"), settings, addresses)
    assert results[addresses[0]] == "accept_all" and results[addresses[1]] == "invalid"
    assert results[addresses[2]] == "valid" and len(results) == 1200
    assert cost == PRICE * 1200 and state.billed == 1200
    assert sim.count(nb_sim.JOBS_CREATE_PATH) == 1 and sim.count(nb_sim.JOBS_RESULTS_PATH) == 2
    assert sim.count(nb_sim.CHECK_PATH) == 0  # a list never loops through single/check
    # The owner's next campaign over the same addresses: nothing created, nothing billed.
    again, cost_again = neverbounce.bulk_check(context(gate, budget="100"), settings, addresses)
    assert again == results and cost_again == 0 and state.billed == 1200


def test_a_bulk_job_that_would_cross_the_budget_is_not_created(db: Database, sim: Simulator) -> None:
    from prospectpro.gate.errors import OverBudget

    state = nb_sim.install(sim, api_key=NEVERBOUNCE_KEY)
    settings = paid_settings(sim)
    with pytest.raises(OverBudget):
        neverbounce.bulk_check(context(paid_gate(db, settings), budget="0.05"), settings,
                               [f"x{i}@c.example" for i in range(30)])
    assert state.billed == 0 and sim.count("/v4/") == 0
