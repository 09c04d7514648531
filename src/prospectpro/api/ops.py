"""Operating endpoints: /healthz and /metrics (Prometheus)."""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterator
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from prospectpro import __version__
from prospectpro.api import schemas
from prospectpro.api.auth import local_client
from prospectpro.api.hub import EventHub
from prospectpro.domain.status import JobStatus
from prospectpro.errors import Forbidden, Unauthorized
from prospectpro.gate import metrics as gate_metrics
from prospectpro.jobs import stats
from prospectpro.jobs.worker import live_workers
from prospectpro.store import migrate
from prospectpro.store.db import Database

router = APIRouter(tags=["operations"])

DURATION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


def health(db: Database, lease_seconds: float) -> tuple[int, dict[str, Any]]:
    try:
        stats.ping(db)
        current = migrate.is_current(db)
        workers = len(live_workers(db, lease_seconds))
        depth = stats.queue_depth(db)
        # Reads still work while a frozen writer holds SQLite's write lock; writes do not.
        writer = db.stalled_writer()
    except Exception as exc:
        return 503, {
            "status": "unavailable",
            "database": f"unreachable: {type(exc).__name__}",
            "schema_current": False,
            "workers_alive": 0,
            "queue_depth": 0,
        }
    status = "ok" if current and workers and writer is None else "degraded"
    body: dict[str, Any] = {
        "status": status,
        "database": "ok",
        "schema_current": current,
        "workers_alive": workers,
        "queue_depth": depth,
    }
    if writer is not None:
        body["writer"] = writer
    return 200, body


# Declares the operator's token in /openapi.json; operator() does the checking.
OPERATOR_TOKEN = HTTPBearer(
    auto_error=False, scheme_name="operatorToken", description="PROSPECTPRO_OPERATOR_TOKEN (when it is set)"
)


def operator(request: Request) -> bool:
    """Whether the caller may see what spans every tenant (job counts, spend, workers): one presenting
    PROSPECTPRO_OPERATOR_TOKEN as its Bearer token, or, when that is not set, one on this machine."""
    expected = request.app.state.settings.operator_token
    if not expected:
        return local_client(request)
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), expected.encode())


@router.get(
    "/healthz",
    response_model=schemas.Health | schemas.PublicHealth,
    responses={503: {"model": schemas.Health | schemas.PublicHealth, "description": "Database unreachable"}},
)
async def healthz(request: Request) -> JSONResponse:
    """Ok or not, for anyone (a load balancer's probe). The operator (see /metrics) gets the details:
    database reachable and migrated, workers alive, queue depth; 'degraded' when no worker would run a job."""
    state = request.app.state
    code, body = await anyio.to_thread.run_sync(health, state.db, state.settings.lease_seconds)
    if not operator(request):
        body = {"status": body["status"]}
    return JSONResponse(body, status_code=code)


class StoreCollector(Collector):
    """Read on each scrape from the store, so every API process reports the same numbers."""

    def __init__(self, db: Database, hub: EventHub) -> None:
        self.db = db
        self.hub = hub

    def collect(self) -> Iterator[Any]:
        queue = stats.queue_stats(self.db)
        jobs = GaugeMetricFamily("prospectpro_jobs", "Jobs by status", labels=["status"])
        for status in JobStatus:
            jobs.add_metric([status.value], queue.by_status.get(status.value, 0))
        yield jobs
        yield GaugeMetricFamily("prospectpro_queue_depth", "Jobs pending and due", value=queue.depth)
        durations = queue.durations
        buckets = [(str(b), sum(d <= b for d in durations)) for b in DURATION_BUCKETS]
        buckets.append(("+Inf", len(durations)))
        hist = HistogramMetricFamily(
            "prospectpro_job_duration_seconds", "Start to completion of completed jobs (latest 10,000)"
        )
        hist.add_metric([], buckets, sum_value=sum(durations))
        yield hist
        count = CounterMetricFamily("prospectpro_provider_calls", "External API calls", labels=["provider"])
        cost = CounterMetricFamily("prospectpro_provider_cost_usd", "External API cost", labels=["provider"])
        for spend in queue.spend:
            count.add_metric([spend.provider], spend.calls)
            cost.add_metric([spend.provider], float(spend.cost))
        yield count
        yield cost
        yield GaugeMetricFamily("prospectpro_sse_clients", "Open event streams in this process", value=self.hub.stream_count)
        # With `serve --api-processes N` every process answers /metrics for itself; this says which one did.
        info = GaugeMetricFamily("prospectpro_server_info", "The server process that answered", labels=["pid", "version"])
        info.add_metric([str(os.getpid()), __version__], 1)
        yield info


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(OPERATOR_TOKEN)],
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **schemas.errors(401, 403)},
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics, for the operator: with PROSPECTPRO_OPERATOR_TOKEN set, for a caller presenting
    it as a Bearer token; without it, for callers on this machine only."""
    state = request.app.state
    if not operator(request):
        if state.settings.operator_token:
            raise Unauthorized("/metrics needs Authorization: Bearer <PROSPECTPRO_OPERATOR_TOKEN>")
        raise Forbidden("/metrics answers callers on this machine; set PROSPECTPRO_OPERATOR_TOKEN to read it remotely")
    registry = CollectorRegistry()
    registry.register(StoreCollector(state.db, state.hub))
    registry.register(gate_metrics.REGISTRY)  # the gate's calls, errors, latency and cost in this process
    ProcessCollector(registry=registry)  # this process's CPU, memory, open files, start time
    body = await anyio.to_thread.run_sync(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
