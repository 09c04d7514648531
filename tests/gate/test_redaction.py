"""Secrets never leave the gate: a provider that echoes its key in error text and bodies, and a failing run."""

from __future__ import annotations

import logging
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import select

from prospectpro.gate.errors import ProviderError, ProviderErrorKind
from prospectpro.gate.redact import REDACTED, Redactor
from prospectpro.gate.types import GateRequest, Verdict
from prospectpro.store.db import Database
from prospectpro.store.schema import api_calls
from tests.gate.fakes import Sleeps, context, fake_spec, make_gate
from tests.sim.server import SimRequest, SimResponse, Simulator

KEY = "pk_live+Se/cret=42"  # URL-encoding changes it: both spellings must go


def echo(request: SimRequest) -> SimResponse:
    key = request.arg("api_key") or ""
    raw = request.path + "?" + "&".join(f"{k}={v[0]}" for k, v in request.query.items())
    if request.arg("fail") == "400":
        return SimResponse(400, {"error": f"invalid argument for key {key} at {raw}"})
    if request.arg("fail") == "503":
        return SimResponse(503, f"upstream broke while serving {key}")
    return SimResponse(200, {"echo": {"key": key, "nested": [f"url {raw}"]}, key: "as a name too"})


def classify(response: httpx.Response) -> Verdict:
    """Like a real provider's: the error text comes from the body (which echoes the key)."""
    if response.is_success:
        return Verdict.success()
    kind = ProviderErrorKind.unavailable if response.status_code >= 500 else ProviderErrorKind.bad_request
    return Verdict(retry=response.status_code >= 500, kind=kind, message=f"HTTP {response.status_code}: {response.text}")


def test_the_key_appears_nowhere_stored_logged_or_raised(
    any_db: Database, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sim.route("GET", "/v1/echo", echo)
    spec = fake_spec(sim, params={"api_key": KEY}, secrets=(KEY,), classify=classify, max_attempts=2, read_timeout=0.3)
    gate = make_gate(any_db, spec, sleep=Sleeps())
    client = gate.http("fake")
    ctx = context(gate)
    errors: list[str] = []

    ok = gate.call(ctx, GateRequest("fake", "echo", key={"q": "ok", "leaked": KEY}),
                   lambda: client.request("GET", "/v1/echo", params={"q": "ok"}).json())
    assert ok.body["echo"]["key"] == KEY  # the caller gets the real answer; the store a redacted one
    for fail in ("400", "503"):
        with pytest.raises(ProviderError) as raised:
            gate.call(ctx, GateRequest("fake", "echo", key={"q": fail}),
                      lambda f=fail: client.request("GET", "/v1/echo", params={"fail": f}).json())  # type: ignore[misc]
        errors.append(str(raised.value))
        errors.append(raised.value.reason)
    with pytest.raises(KeyError):  # a provider's own bug that shows the answer
        gate.call(ctx, GateRequest("fake", "echo", key={"q": "bug"}),
                  lambda: {}[client.request("GET", "/v1/echo", params={"q": "bug"}).text])
    # A timeout and a refused connection: httpx's own texts carry the URL with the key.
    sim.fail("/v1/echo", SimResponse(200, {}, delay=0.6), times=2)
    with pytest.raises(ProviderError) as raised:
        client.request("GET", "/v1/echo")
    errors.append(str(raised.value))
    dead = make_gate(any_db, fake_spec("http://127.0.0.1:9", params={"api_key": KEY}, secrets=(KEY,), max_attempts=1))
    with pytest.raises(ProviderError) as raised:
        dead.http("fake").request("GET", "/v1/echo")
    errors.append(str(raised.value))

    assert sim.count("/v1/echo") >= 6 and all(c.arg("api_key") == KEY for c in sim.calls_to("/v1/echo"))
    spellings = (KEY, quote(KEY, safe=""), quote(KEY))
    with any_db.read() as conn:
        stored = [repr(tuple(row)) for row in conn.execute(select(api_calls))]
    assert len(stored) == 4
    assert "invalid argument for key [redacted]" in "".join(stored + errors)
    assert REDACTED in stored[0]
    for text in (*errors, *stored, caplog.text, *(repr(r.__dict__) for r in caplog.records)):
        for spelling in spellings:
            assert spelling not in text


def test_the_redactor_walks_json_and_leaves_other_values() -> None:
    r = Redactor(["abc", ""])
    assert r.value({"abc": ["x abc y", 1, None, {"k": "abc"}], "n": 2.5}) == {
        REDACTED: [f"x {REDACTED} y", 1, None, {"k": REDACTED}],
        "n": 2.5,
    }
    assert not Redactor([""]) and Redactor([""]).text("abc") == "abc"


def test_json_values_are_redacted_also_when_json_spells_the_secret_differently() -> None:
    assert Redactor(["abc"]).json_value({"x": ["abc"], "y": 1}) == {"x": [REDACTED], "y": 1}
    assert Redactor(['a"b\\c']).json_value({"x": 'say a"b\\c'}) == {"x": f"say {REDACTED}"}
    body = {"x": ("t", 1)}
    assert Redactor(["zzz"]).json_value(body) == {"x": ["t", 1]}  # the JSON copy the store keeps
