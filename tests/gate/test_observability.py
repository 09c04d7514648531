"""Structured logs and Prometheus metrics per provider and operation; the gate as bootstrap builds it."""

from __future__ import annotations

import logging
import sys
import types

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from prospectpro import bootstrap
from prospectpro.gate import metrics
from prospectpro.gate.core import Gate
from prospectpro.gate.types import ProviderSpec
from prospectpro.store.db import Database
from tests.gate.fakes import PRICE, SETTINGS, Sleeps, context, fake_spec, install, make_gate, search
from tests.sim.server import SimResponse, Simulator


def value(text: str, name: str, labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(part in line for part in labels.split(",")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def scrape() -> str:
    registry = CollectorRegistry()
    registry.register(metrics.REGISTRY)  # as /metrics does
    return generate_latest(registry).decode()


def test_calls_errors_latency_and_cost_per_provider_and_operation(
    db: Database, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    install(sim)
    gate = make_gate(db, fake_spec(sim), sleep=Sleeps())
    labels = 'provider="fake",operation="search"'
    before = scrape()
    caplog.set_level(logging.DEBUG, logger="prospectpro.gate")
    sim.fail("/v1/search", SimResponse(503, {}))
    search(context(gate), "cafe")
    after = scrape()
    assert value(after, "prospectpro_gate_calls_total", f'{labels},status="200"') - value(
        before, "prospectpro_gate_calls_total", f'{labels},status="200"') == 1
    assert value(after, "prospectpro_gate_calls_total", f'{labels},status="503"') - value(
        before, "prospectpro_gate_calls_total", f'{labels},status="503"') == 1
    assert value(after, "prospectpro_gate_errors_total", f'{labels},kind="unavailable"') - value(
        before, "prospectpro_gate_errors_total", f'{labels},kind="unavailable"') == 1
    assert value(after, "prospectpro_gate_latency_seconds_count", labels) - value(
        before, "prospectpro_gate_latency_seconds_count", labels) == 2
    assert value(after, "prospectpro_gate_cost_usd_total", labels) - value(
        before, "prospectpro_gate_cost_usd_total", labels) == pytest.approx(float(PRICE))
    attempts = [r for r in caplog.records if r.name == "prospectpro.gate" and getattr(r, "attempt", None)]
    assert {(r.provider, r.operation) for r in attempts} == {("fake", "search")}  # type: ignore[attr-defined]
    assert any(getattr(r, "latency", None) is not None and r.status == "200" for r in attempts)  # type: ignore[attr-defined]
    assert any(r.status == "unavailable" and r.attempt == 1 for r in attempts)  # type: ignore[attr-defined]


def test_build_gate_collects_the_specs_of_the_provider_modules_present(
    db: Database, sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured = types.ModuleType("tests_gate_fake_provider")
    configured.spec = lambda settings: ProviderSpec(name="fake", base_url=sim.url)  # type: ignore[attr-defined]
    unconfigured = types.ModuleType("tests_gate_unconfigured_provider")
    unconfigured.spec = lambda settings: None  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, configured.__name__, configured)
    monkeypatch.setitem(sys.modules, unconfigured.__name__, unconfigured)
    monkeypatch.setattr(
        bootstrap,
        "PROVIDER_MODULES",
        (configured.__name__, unconfigured.__name__, "prospectpro.providers.not_in_this_build"),
    )
    gate = bootstrap.build_gate(db, SETTINGS)
    assert isinstance(gate, Gate) and list(gate.specs) == ["fake"]
    assert gate.http("fake").spec.base_url == sim.url
