"""The circuit breaker: opens after N failures or one auth failure, closes after its time; doctor shows it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from prospectpro import ops
from prospectpro.gate.errors import ProviderError, ProviderErrorKind
from prospectpro.store import ledger
from prospectpro.store.db import Database
from tests.gate.fakes import SETTINGS, Clock, Sleeps, fake_spec, install, make_gate
from tests.sim.server import SimResponse, Simulator


def call(gate) -> ProviderError | None:  # type: ignore[no-untyped-def]
    try:
        gate.http("fake").request("GET", "/v1/search", params={"q": "cafe"})
    except ProviderError as exc:
        return exc
    return None


def test_consecutive_failures_open_the_breaker_and_it_closes_after_its_time(db: Database, sim: Simulator) -> None:
    install(sim)
    clock = Clock()
    gate = make_gate(db, fake_spec(sim, max_attempts=1, breaker_failures=3), clock=clock, sleep=Sleeps())
    sim.fail("/v1/search", SimResponse(503, {}), times=3)
    assert [e.kind if e else None for e in (call(gate), call(gate))] == [ProviderErrorKind.unavailable] * 2
    with db.read() as conn:
        assert "fake" not in ledger.provider_states(conn)  # not open yet: nothing to show
    assert call(gate).kind == ProviderErrorKind.unavailable  # type: ignore[union-attr]

    refused = call(gate)
    assert refused is not None and refused.kind == ProviderErrorKind.breaker_open
    assert "unavailable: HTTP 503" in refused.message
    assert sim.count("/v1/search") == 3  # no request while open
    with db.read() as conn:
        state = ledger.provider_states(conn)["fake"]
    assert state.open_at(clock.now) and state.failures == 3
    assert state.breaker_open_until == clock.now + timedelta(seconds=60)

    clock.now += timedelta(seconds=61)  # its time is over: the next call is tried, succeeds, and closes it
    assert call(gate) is None
    with db.read() as conn:
        state = ledger.provider_states(conn)["fake"]
    assert state.breaker_open_until is None and state.failures == 0


def test_a_success_resets_the_count(db: Database, sim: Simulator) -> None:
    install(sim)
    gate = make_gate(db, fake_spec(sim, max_attempts=1, breaker_failures=2), sleep=Sleeps())
    sim.fail("/v1/search", SimResponse(503, {}))
    assert call(gate) is not None
    assert call(gate) is None
    sim.fail("/v1/search", SimResponse(503, {}))
    assert call(gate).kind == ProviderErrorKind.unavailable  # type: ignore[union-attr]
    assert call(gate) is None  # 1 consecutive failure, not 2


def test_a_bad_request_does_not_count(db: Database, sim: Simulator) -> None:
    install(sim)
    gate = make_gate(db, fake_spec(sim, max_attempts=1, breaker_failures=1), sleep=Sleeps())
    sim.fail("/v1/search", SimResponse(400, {}))
    assert call(gate).kind == ProviderErrorKind.bad_request  # type: ignore[union-attr]
    assert call(gate) is None


def test_one_auth_failure_opens_it_and_doctor_says_so(
    db: Database, sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(sim)
    clock = Clock()
    spec = fake_spec(sim, params={"key": "wrong"}, secrets=("wrong",))
    gate = make_gate(db, spec, clock=clock, sleep=Sleeps())
    assert call(gate).kind == ProviderErrorKind.auth  # type: ignore[union-attr]
    assert call(gate).kind == ProviderErrorKind.breaker_open  # type: ignore[union-attr]
    assert sim.count("/v1/search") == 1

    import prospectpro.bootstrap

    monkeypatch.setattr(prospectpro.bootstrap, "provider_specs", lambda settings: [spec])
    checks = ops.gate_checks(SETTINGS, db, now=clock.now)
    assert [(c.name, c.status) for c in checks] == [("gate: fake", ops.FAIL)]
    until = (clock.now + timedelta(seconds=60)).isoformat(timespec="seconds").replace("+00:00", "Z")
    assert checks[0].detail == f"fake: breaker open until {until} (auth: HTTP 401)"
    # Read from the store: another process (doctor) sees it; after its time it is not shown as open.
    later = ops.gate_checks(SETTINGS, db, now=clock.now + timedelta(seconds=61))
    assert later[0].status == ops.OK


def test_while_open_gate_call_records_nothing_but_still_serves_recorded_answers(db: Database, sim: Simulator) -> None:
    from sqlalchemy import func, select

    from prospectpro.store.schema import api_calls
    from tests.gate.fakes import context, search

    install(sim)
    gate = make_gate(db, fake_spec(sim, max_attempts=1, breaker_failures=1), sleep=Sleeps())
    ctx = context(gate)
    search(ctx, "recorded")
    sim.fail("/v1/search", SimResponse(503, {}))
    with pytest.raises(ProviderError):
        search(ctx, "fails")
    with pytest.raises(ProviderError) as raised:
        search(ctx, "refused")
    assert raised.value.kind == ProviderErrorKind.breaker_open
    assert search(ctx, "recorded").body["q"] == "recorded"  # this job's own answer: no call needed
    with db.read() as conn:
        assert conn.execute(select(func.count()).select_from(api_calls)).scalar_one() == 2  # ok + error
    assert sim.count("/v1/search") == 2
