"""The ledger layer on both stores: never pay twice, reuse within an owner, the budgets, the lease fence."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from prospectpro.gate.errors import OverBudget, ProviderError
from prospectpro.gate.types import GateRequest
from prospectpro.jobs import queue
from prospectpro.jobs.model import LeaseLost
from prospectpro.store import ledger
from prospectpro.store.db import Database
from prospectpro.store.schema import LOCAL_USER_ID, api_calls
from tests.gate.fakes import PRICE, Clock, Sleeps, add_user, context, fake_spec, install, make_gate, search
from tests.sim.server import SimResponse, Simulator
from tests.support import make_job


def rows(db: Database) -> list:  # type: ignore[type-arg]
    with db.read() as conn:
        return list(conn.execute(select(api_calls).order_by(api_calls.c.id)))


def test_a_job_asking_again_gets_its_recorded_answer_without_a_call(any_db: Database, sim: Simulator) -> None:
    install(sim)
    gate = make_gate(any_db, fake_spec(sim))
    ctx = context(gate)
    first = search(ctx, "cafe")
    again = search(ctx, "cafe")
    assert sim.count("/v1/search") == 1
    assert first.body == again.body == {"q": "cafe", "results": ["cafe-1"]}
    assert (again.reused, again.cost, again.call_id) == (False, PRICE, first.call_id)
    [row] = rows(any_db)
    assert (row.status, row.cost, row.provider, row.operation, row.request) == ("ok", PRICE, "fake", "search",
                                                                                {"q": "cafe"})
    assert row.completed_at is not None and row.reusable_until == row.completed_at + timedelta(days=30)


def test_a_takeover_finds_the_reserved_row_and_does_not_reserve_twice(any_db: Database, sim: Simulator) -> None:
    install(sim)
    gate = make_gate(any_db, fake_spec(sim))
    ctx = context(gate, budget=str(PRICE))  # room for exactly one request
    req_hash = ledger.request_hash("fake", "search", {"q": "cafe"})
    call = ledger.NewCall(ledger.idempotency_key(ctx.job_id, req_hash), req_hash, "fake", "search", {"q": "cafe"},
                          ctx.owner_id, ctx.job_id, None)
    with any_db.write() as conn:  # a worker reserved, then died before it settled
        crashed = ledger.reserve(conn, call, PRICE, ctx.budget_limit, Clock()(), existing=None)
    assert crashed.status == "reserved"
    answer = search(ctx, "cafe")
    assert answer.call_id == crashed.call_id and answer.cost == PRICE
    assert sim.count("/v1/search") == 1
    [row] = rows(any_db)
    assert (row.status, row.cost) == ("ok", PRICE)


def test_a_failed_attempt_is_retried_on_the_same_row(any_db: Database, sim: Simulator) -> None:
    install(sim)
    gate = make_gate(any_db, fake_spec(sim, max_attempts=1), sleep=Sleeps())
    ctx = context(gate)
    sim.fail("/v1/search", SimResponse(503, {}))
    with pytest.raises(ProviderError):
        search(ctx, "cafe")
    [row] = rows(any_db)
    assert (row.status, row.cost, row.error) == ("error", 0, "fake: HTTP 503")
    assert search(ctx, "cafe").cost == PRICE
    [row] = rows(any_db)
    assert (row.status, row.cost, row.error) == ("ok", PRICE, None)
    with any_db.read() as conn:
        stats = ledger.job_provider_stats(conn, ctx.job_id)
    assert stats == {"fake": {"calls": 1, "reused": 0, "errors": 0, "cost": PRICE, "saved_cost": Decimal("0")}}


def test_the_same_owner_reuses_an_answer_within_the_cache_days_only(any_db: Database, sim: Simulator) -> None:
    install(sim)
    clock = Clock()
    gate = make_gate(any_db, fake_spec(sim), clock=clock)
    first = search(context(gate, campaign_id="c1"), "cafe")
    clock.now += timedelta(days=29)
    second_ctx = context(gate, campaign_id="c2")
    second = search(second_ctx, "cafe")
    assert (second.reused, second.cost, second.body) == (True, 0, first.body)
    assert sim.count("/v1/search") == 1
    reused = rows(any_db)[-1]
    assert (reused.status, reused.cost, reused.saved_cost, reused.reused_from, reused.campaign_id) == (
        "reused", 0, PRICE, first.call_id, "c2")
    assert search(second_ctx, "cafe").body == first.body  # the job's own row, now
    with any_db.read() as conn:
        stats = ledger.job_provider_stats(conn, second_ctx.job_id)
        assert ledger.job_spent(conn, second_ctx.job_id) == 0
    assert stats == {"fake": {"calls": 0, "reused": 1, "errors": 0, "cost": Decimal("0"), "saved_cost": PRICE}}

    other_owner = add_user(any_db)
    search(context(gate, owner_id=other_owner), "cafe")
    assert sim.count("/v1/search") == 2  # not across owners

    clock.now += timedelta(days=2)  # 31 days after the first answer
    late = search(context(gate), "cafe")
    assert (late.reused, late.cost) == (False, PRICE)
    assert sim.count("/v1/search") == 3


def test_reuse_days_zero_is_never_reused(any_db: Database, sim: Simulator) -> None:
    install(sim)
    gate = make_gate(any_db, fake_spec(sim))
    search(context(gate), "cafe", reuse_days=0)
    assert search(context(gate), "cafe").reused is False
    assert sim.count("/v1/search") == 2


def test_a_call_over_the_campaign_budget_is_not_made(any_db: Database, sim: Simulator) -> None:
    install(sim)
    gate = make_gate(any_db, fake_spec(sim))
    ctx = context(gate, budget="0.05")
    search(ctx, "cafe")
    with pytest.raises(OverBudget) as raised:
        search(ctx, "bar")
    assert raised.value.limit == "campaign budget" and raised.value.cost == PRICE
    assert sim.count("/v1/search") == 1
    refused = rows(any_db)[-1]
    assert (refused.status, refused.cost, refused.request) == ("over_budget", 0, {"q": "bar"})
    with any_db.read() as conn:
        assert ledger.job_budget_exhausted(conn, ctx.job_id)
        assert ledger.job_spent(conn, ctx.job_id) == PRICE
    # A free call is still made and recorded.
    free = gate.call(ctx, GateRequest("fake", "ping", key={"n": 1}), lambda: {"pong": True})
    assert free.cost == 0 and rows(any_db)[-1].status == "ok"


def test_the_owner_monthly_budget_across_campaigns(any_db: Database, sim: Simulator) -> None:
    install(sim)
    clock = Clock()
    gate = make_gate(any_db, fake_spec(sim), clock=clock)
    owner = add_user(any_db, monthly_budget="0.05")
    search(context(gate, owner_id=owner), "cafe")
    with pytest.raises(OverBudget) as raised:
        search(context(gate, owner_id=owner), "bar")
    assert raised.value.limit == "monthly budget"
    with any_db.read() as conn:
        assert ledger.owner_month_spent(conn, owner, clock.now) == PRICE
        assert ledger.owner_month_spent(conn, owner, clock.now + timedelta(days=31)) == 0
    clock.now += timedelta(days=31)  # a new calendar month
    assert search(context(gate, owner_id=owner), "bar").cost == PRICE


def test_the_settled_cost_is_the_reported_one_never_above_the_reservation(any_db: Database, sim: Simulator) -> None:
    gate = make_gate(any_db, fake_spec(sim))
    ctx = context(gate)
    cheap = gate.call(ctx, GateRequest("fake", "x", key={"n": 1}, max_cost=Decimal("0.1"),
                                       cost_of=lambda body: Decimal("0.01") * len(body)), lambda: [1, 2])
    dear = gate.call(ctx, GateRequest("fake", "x", key={"n": 2}, max_cost=Decimal("0.1"),
                                      cost_of=lambda body: Decimal("5")), lambda: [1])
    assert (cheap.cost, dear.cost) == (Decimal("0.02"), Decimal("0.1"))
    assert [r.cost for r in rows(any_db)] == [Decimal("0.02"), Decimal("0.1")]


def test_a_worker_that_lost_its_lease_cannot_spend(any_db: Database, sim: Simulator) -> None:
    install(sim)
    gate = make_gate(any_db, fake_spec(sim))
    job = make_job(any_db)
    stale, _ = queue.claim(any_db, "w1", lease_seconds=0.01)  # type: ignore[misc]
    fresh, _ = queue.claim(any_db, "w2", lease_seconds=30, now=Clock().now + timedelta(days=3650))  # type: ignore[misc]
    assert fresh.token > stale.token
    with pytest.raises(LeaseLost):
        search(context(gate, job_id=job.id, lease_token=stale.token), "cafe")
    assert sim.count("/v1/search") == 0 and rows(any_db) == []
    assert search(context(gate, job_id=job.id, lease_token=fresh.token), "cafe").cost == PRICE


def test_keys_and_hashes_are_stable() -> None:
    a = ledger.request_hash("google", "text_search", {"q": "cafe", "page": None})
    assert a == ledger.request_hash("google", "text_search", {"page": None, "q": "cafe"})
    assert a != ledger.request_hash("google", "text_search", {"q": "cafes", "page": None})
    job = str(uuid.uuid4())
    assert ledger.idempotency_key(job, a) != ledger.idempotency_key(str(uuid.uuid4()), a)
    assert len(ledger.idempotency_key(job, a)) == 64 and LOCAL_USER_ID


def test_a_failing_cost_of_still_settles_the_made_call_at_its_reservation(any_db: Database, sim: Simulator) -> None:
    gate = make_gate(any_db, fake_spec(sim))
    answer = gate.call(context(gate), GateRequest("fake", "x", key={"n": 1}, max_cost=Decimal("0.1"),
                                                  cost_of=lambda body: body["missing"]), lambda: {"ok": 1})
    assert answer.cost == Decimal("0.1")
    [row] = rows(any_db)
    assert (row.status, row.cost, row.response) == ("ok", Decimal("0.1"), {"ok": 1})
