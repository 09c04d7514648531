"""The gate's Prometheus metrics, per provider and operation, counted in this process.

Kept in a registry of their own (``REGISTRY``), which ``/metrics``
(api/ops.py) adds to what it answers: a worker embedded in the API process
reports here; the spend of every process is also read from the ledger there.
"""

from __future__ import annotations

from decimal import Decimal

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

CALLS = Counter(
    "prospectpro_gate_calls",
    "Requests sent to a provider (each attempt), by outcome",
    ["provider", "operation", "status"],
    registry=REGISTRY,
)
ERRORS = Counter(
    "prospectpro_gate_errors",
    "Provider calls that gave no answer, by kind",
    ["provider", "operation", "kind"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "prospectpro_gate_latency_seconds",
    "One attempt, request to last byte",
    ["provider", "operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
COST = Counter(
    "prospectpro_gate_cost_usd",
    "Settled cost of ledgered calls",
    ["provider", "operation"],
    registry=REGISTRY,
)
LEDGER = Counter(
    "prospectpro_gate_ledger",
    "Ledgered calls by how they were answered (ok, error, reused, own, over_budget)",
    ["provider", "operation", "status"],
    registry=REGISTRY,
)


def add_cost(provider: str, operation: str, cost: Decimal) -> None:
    if cost:
        COST.labels(provider, operation).inc(float(cost))
