"""Rate limits: this process's (callers wait their turn), the installation-wide one counted in the store,
and the concurrency cap."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from prospectpro.gate.client import RateLimiter
from prospectpro.store.db import Database
from prospectpro.store.schema import rate_limits
from tests.gate.fakes import Clock, fake_spec, install, make_gate
from tests.sim.server import SimRequest, SimResponse, Simulator


class Time:
    """A clock that the injected sleep moves forward: waits cost no real time."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.mono = 1000.0
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.mono += seconds
        self.clock.now += timedelta(seconds=seconds)


def test_the_process_rate_limit_spaces_calls_and_callers_wait() -> None:
    t = Time()
    limiter = RateLimiter(4.0, lambda: t.mono, t.sleep)
    for _ in range(5):
        limiter.wait()
    assert t.waits == pytest.approx([0.25, 0.25, 0.25, 0.25])


def test_the_installation_wide_limit_is_counted_in_the_store(any_db: Database, sim: Simulator) -> None:
    install(sim)
    t = Time()
    spec = fake_spec(sim, shared_per_minute=60, shared_burst=1)
    one, other = (make_gate(any_db, spec, clock=t.clock, sleep=t.sleep) for _ in range(2))  # two processes' gates
    for gate in (one, other, one):
        gate.http("fake").request("GET", "/v1/search", params={"q": "x"})
    assert sum(t.waits) == pytest.approx(2.0, abs=0.01)  # 1 per second, no burst, across both gates
    assert sim.count("/v1/search") == 3
    with any_db.read() as conn:
        assert conn.execute(select(rate_limits.c.key)).scalars().all() == ["provider:fake"]


def test_the_concurrency_cap_holds(db: Database, sim: Simulator) -> None:
    in_flight = 0
    most = 0
    lock = threading.Lock()

    def slow(request: SimRequest) -> SimResponse:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        time.sleep(0.05)
        with lock:
            in_flight -= 1
        return SimResponse(200, {})

    sim.route("GET", "/v1/slow", slow)
    gate = make_gate(db, fake_spec(sim, concurrency=2))
    threads = [threading.Thread(target=lambda: gate.http("fake").request("GET", "/v1/slow")) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert most == 2 and sim.count("/v1/slow") == 6


def test_a_rate_with_a_burst_holds_that_many_and_waits_exact_fractions() -> None:
    from prospectpro.domain.rate import Rate

    now = Clock().now
    rate = Rate(600, burst=2)  # 10 a second, 2 at once
    bucket = rate.full(now)
    bucket, first = rate.take_or_wait(bucket, now)
    bucket, second = rate.take_or_wait(bucket, now)
    bucket, third = rate.take_or_wait(bucket, now)
    assert (first, second) == (0.0, 0.0) and third == pytest.approx(0.1)
    assert Rate(60).capacity == 60.0  # no burst given: as before, the whole minute's worth
