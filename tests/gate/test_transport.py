"""The transport layer against the simulator: retries, Retry-After, timeouts, size cap, what is not retried."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from sqlalchemy import select

from prospectpro.gate.client import ProviderHttp, backoff_delay, parse_retry_after
from prospectpro.gate.errors import ProviderError, ProviderErrorKind
from prospectpro.store.db import Database
from prospectpro.store.schema import api_calls
from tests.gate.fakes import KEY, Sleeps, context, fake_spec, install, make_gate, search
from tests.sim.server import SimResponse, Simulator


def get(gate, path: str = "/v1/search") -> httpx.Response:  # type: ignore[no-untyped-def]
    return gate.http("fake").request("GET", path, params={"q": "cafe"})


def test_a_503_is_retried_then_answers(db: Database, sim: Simulator) -> None:
    install(sim)
    sleeps = Sleeps()
    gate = make_gate(db, fake_spec(sim), sleep=sleeps)
    sim.fail("/v1/search", SimResponse(503, {"error": "busy"}))
    assert get(gate).json()["q"] == "cafe"
    assert sim.count("/v1/search") == 2
    assert len(sleeps.waits) == 1 and 0 <= sleeps.waits[0] <= 0.01  # full jitter of backoff_base


def test_every_request_carries_the_identifying_user_agent_and_the_spec_params(db: Database, sim: Simulator) -> None:
    install(sim)
    gate = make_gate(db, fake_spec(sim, headers={"X-Goog-FieldMask": "places.id"}))
    get(gate)
    seen = sim.calls_to("/v1/search")[0]
    assert seen.headers["user-agent"].startswith("ProspectPro/")
    assert "python-httpx" not in seen.headers["user-agent"]
    assert seen.headers["x-goog-fieldmask"] == "places.id"
    assert seen.arg("key") == KEY and seen.arg("q") == "cafe"


def test_a_429_with_retry_after_seconds_waits_that_long(db: Database, sim: Simulator) -> None:
    install(sim)
    gate = make_gate(db, fake_spec(sim))  # the real sleep: the one test that waits
    sim.fail("/v1/search", SimResponse(429, {"error": "slow down"}, headers={"Retry-After": "1"}))
    started = time.monotonic()
    assert get(gate).status_code == 200
    calls = sim.calls_to("/v1/search")
    assert len(calls) == 2
    assert calls[1].at - calls[0].at >= 0.95
    assert time.monotonic() - started >= 0.95


def test_a_429_with_an_http_date_waits_until_then(db: Database, sim: Simulator) -> None:
    install(sim)
    sleeps = Sleeps()
    gate = make_gate(db, fake_spec(sim), sleep=sleeps)
    when = datetime.now(UTC) + timedelta(seconds=3)
    sim.fail("/v1/search", SimResponse(429, {}, headers={"Retry-After": format_datetime(when, usegmt=True)}))
    assert get(gate).status_code == 200
    assert len(sleeps.waits) == 1 and 1.5 < sleeps.waits[0] <= 3.0


def test_retry_after_parsing() -> None:
    now = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(" 0.5 ", now) == 0.5
    assert parse_retry_after("Wed, 02 Dec 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Wed, 02 Dec 2026 11:00:00 GMT", now) == 0.0  # in the past: now
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
    # capped at backoff_max; without Retry-After, full jitter under base * 2^(attempt-1)
    assert backoff_delay(1, 0.5, 30.0, 120.0, lambda: 0.5) == 30.0
    assert backoff_delay(3, 0.5, 30.0, None, lambda: 1.0) == 2.0
    assert backoff_delay(10, 0.5, 30.0, None, lambda: 1.0) == 30.0


def test_a_429_without_retry_after_backs_off_and_gives_up_as_rate_limited(db: Database, sim: Simulator) -> None:
    install(sim)
    sleeps = Sleeps()
    gate = make_gate(db, fake_spec(sim, backoff_base=1.0), sleep=sleeps, rand=lambda: 1.0)
    sim.fail("/v1/search", SimResponse(429, {"error": "slow down"}), times=3)
    with pytest.raises(ProviderError) as raised:
        get(gate)
    assert raised.value.kind == ProviderErrorKind.rate_limited
    assert sim.count("/v1/search") == 3  # max_attempts
    assert sleeps.waits == [1.0, 2.0]  # exponential


@pytest.mark.parametrize(("status", "kind"), [(400, ProviderErrorKind.bad_request), (401, ProviderErrorKind.auth)])
def test_answers_that_must_not_be_retried_are_not(
    db: Database, sim: Simulator, status: int, kind: ProviderErrorKind
) -> None:
    install(sim)
    sleeps = Sleeps()
    gate = make_gate(db, fake_spec(sim), sleep=sleeps)
    sim.fail("/v1/search", SimResponse(status, {"error": "no"}))
    with pytest.raises(ProviderError) as raised:
        get(gate)
    assert raised.value.kind == kind
    assert sim.count("/v1/search") == 1 and sleeps.waits == []


def test_a_hang_past_the_read_timeout_is_a_retried_timeout(db: Database, sim: Simulator) -> None:
    install(sim)
    gate = make_gate(db, fake_spec(sim, read_timeout=0.2, max_attempts=2), sleep=Sleeps())
    sim.fail("/v1/search", SimResponse(200, {}, delay=0.6), times=2)
    with pytest.raises(ProviderError) as raised:
        get(gate)
    assert raised.value.kind == ProviderErrorKind.timeout
    assert sim.count("/v1/search") == 2
    assert "key=" not in str(raised.value) and KEY not in str(raised.value)


def test_the_total_time_of_an_attempt_is_bounded_while_the_body_streams(db: Database, sim: Simulator) -> None:
    install(sim)
    ticks = iter(range(1000))
    # Each read of the clock is a second later: the body's first chunk arrives after the total time.
    gate = make_gate(db, fake_spec(sim, total_timeout=1.5, max_attempts=1), monotonic=lambda: float(next(ticks)))
    with pytest.raises(ProviderError) as raised:
        get(gate)
    assert raised.value.kind == ProviderErrorKind.timeout


def test_a_truncated_body_is_retried_then_malformed(db: Database, sim: Simulator) -> None:
    install(sim)
    gate = make_gate(db, fake_spec(sim, max_attempts=2), sleep=Sleeps())
    sim.fail("/v1/search", SimResponse(200, {"results": ["x" * 100]}, truncate_to=20), times=2)
    with pytest.raises(ProviderError) as raised:
        get(gate)
    assert raised.value.kind == ProviderErrorKind.malformed
    assert sim.count("/v1/search") == 2


def test_a_truncated_body_once_then_the_whole_answer(db: Database, sim: Simulator) -> None:
    install(sim)
    gate = make_gate(db, fake_spec(sim), sleep=Sleeps())
    sim.fail("/v1/search", SimResponse(200, {"results": ["x" * 100]}, truncate_to=20))
    assert get(gate).json()["q"] == "cafe"


def test_an_oversized_body_is_refused_and_not_retried(db: Database, sim: Simulator) -> None:
    install(sim)
    gate = make_gate(db, fake_spec(sim, max_response_bytes=1000), sleep=Sleeps())
    sim.fail("/v1/search", SimResponse(200, {"results": ["x" * 5000]}))
    with pytest.raises(ProviderError) as raised:
        get(gate)
    assert raised.value.kind == ProviderErrorKind.too_large
    assert sim.count("/v1/search") == 1


def test_an_oversized_body_without_a_length_is_cut_off_while_streaming(sim: Simulator) -> None:
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        for _ in range(100):  # 100 KB, chunked: no length announced
            sent.append(1)
            yield b"x" * 1024

    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=chunks()))
    client = ProviderHttp(fake_spec(sim, max_response_bytes=4096, max_attempts=1), db=None, agent="t",
                          transport=transport)
    with pytest.raises(ProviderError) as raised:
        client.request("GET", "/v1/big")
    assert raised.value.kind == ProviderErrorKind.too_large
    assert len(sent) < 10  # stopped reading once over the cap


def test_malformed_json_read_by_fn_is_an_error_row(db: Database, sim: Simulator) -> None:
    install(sim)
    gate = make_gate(db, fake_spec(sim), sleep=Sleeps())
    sim.fail("/v1/search", SimResponse(200, "{not json", headers={"Content-Type": "application/json"}))
    ctx = context(gate)
    with pytest.raises(ValueError):
        search(ctx, "cafe")
    with db.read() as conn:
        row = conn.execute(select(api_calls)).one()
    assert row.status == "error" and row.cost == 0 and "JSONDecodeError" in row.error


def test_a_connection_refused_is_unavailable(db: Database, sim: Simulator) -> None:
    gate = make_gate(db, fake_spec(sim, base_url="http://127.0.0.1:9", max_attempts=2), sleep=Sleeps())
    with pytest.raises(ProviderError) as raised:
        get(gate)
    assert raised.value.kind == ProviderErrorKind.unavailable


def test_an_unknown_provider_is_not_configured(db: Database, sim: Simulator) -> None:
    gate = make_gate(db, fake_spec(sim))
    with pytest.raises(ProviderError) as raised:
        gate.http("hunter")
    assert raised.value.kind == ProviderErrorKind.auth and "not configured" in str(raised.value)
