"""Operating checks: ``prospectpro doctor`` (this installation) and
``prospectpro smoke`` (any deployment, over HTTP).

Each check is one line: what was checked, whether it holds, and what to do
when it does not.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from httpx_sse import connect_sse

from prospectpro.config import Settings
from prospectpro.domain.clock import utcnow
from prospectpro.jobs import stats
from prospectpro.jobs.worker import live_workers
from prospectpro.places.locations import imported_data
from prospectpro.store import migrate
from prospectpro.store.db import Database

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""


# -- doctor ------------------------------------------------------------------
# Each API process and worker holds up to 30 pooled connections and one LISTEN connection (store/db.py, store/listen.py).
CONNECTIONS_PER_PROCESS = 31


def _postgres_checks(db: Database) -> list[Check]:
    from prospectpro.store import listen

    facts = listen.server_facts(db)
    checks = [Check("postgresql", OK, f"server {facts['version']}")]
    if facts["superuser"]:
        checks.append(
            Check(
                "database role",
                WARN,
                "a superuser: nothing in the database limits what a bug could reach",
                "connect as an ordinary role that owns the schema",
            )
        )
    headroom = facts["max"] - facts["used"]
    status = OK if headroom >= CONNECTIONS_PER_PROCESS else WARN
    checks.append(
        Check(
            "connections",
            status,
            f"{facts['used']} of {facts['max']} in use, room for ~{headroom // CONNECTIONS_PER_PROCESS} more processes",
            "" if status == OK else "raise max_connections, or run fewer processes",
        )
    )
    try:
        took = listen.probe(db)
    except Exception as exc:
        checks.append(
            Check(
                "listen/notify",
                FAIL,
                f"{type(exc).__name__}: {exc}",
                "workers and streams fall back to polling; check the server's notifications",
            )
        )
    else:
        checks.append(Check("listen/notify", OK, f"a notification arrived in {1000 * took:.0f} ms"))
    return checks


def doctor(settings: Settings, db: Database) -> list[Check]:
    checks = [Check("configuration", OK, f"database {_redact(settings.resolved_database_url())}")]
    try:
        stats.ping(db)
    except Exception as exc:
        checks.append(
            Check("database", FAIL, f"unreachable: {type(exc).__name__}: {exc}", "check PROSPECTPRO_DATABASE_URL")
        )
        return checks
    checks.append(Check("database", OK, "reachable"))
    current, head = migrate.current_revision(db), migrate.head_revision()
    if current != head:
        checks.append(Check("schema", FAIL, f"at {current or 'nothing'}, code expects {head}", "run: prospectpro migrate"))
        return checks
    checks.append(Check("schema", OK, f"migrated ({head})"))
    if not db.is_sqlite:
        checks.extend(_postgres_checks(db))
    workers = live_workers(db, settings.lease_seconds)
    if workers:
        slots = sum(int(w["concurrency"]) for w in workers)  # type: ignore[call-overload]
        checks.append(Check("workers", OK, f"{len(workers)} alive, {slots} job slots"))
    else:
        checks.append(
            Check(
                "workers",
                WARN,
                "none alive: queued jobs wait (the CLI's discover starts one for itself)",
                "run: prospectpro worker  (or prospectpro serve)",
            )
        )
    data = imported_data(db)
    if data.places and data.localities:
        checks.append(
            Check(
                "discovery data",
                OK,
                f"{data.places} businesses, {data.localities} places from {', '.join(data.datasets)}",
            )
        )
    else:
        checks.append(
            Check(
                "discovery data",
                FAIL,
                f"{data.places} businesses, {data.localities} places",
                "run: prospectpro places import FILE.osm.pbf",
            )
        )
    checks.append(Check("provider: OpenStreetMap", OK, "local data, no key needed, $0"))
    if not settings.google_places_api_key:
        checks.append(Check("provider: Google Places", WARN, "not configured (set PROSPECTPRO_GOOGLE_PLACES_API_KEY)"))
    for provider in ("Hunter.io", "NeverBounce"):
        checks.append(Check(f"provider: {provider}", WARN, "not available in this version"))
    checks.extend(gate_checks(settings, db))
    return checks


def gate_checks(settings: Settings, db: Database, now: datetime | None = None) -> list[Check]:
    """One check per configured provider of the gate, with its circuit breaker as the store records it
    (any process's): "google: breaker open until … (auth: API key not valid)"."""
    from prospectpro.bootstrap import provider_specs
    from prospectpro.store.ledger import provider_states

    now = now or utcnow()
    with db.read() as conn:
        states = provider_states(conn)
    checks = []
    for spec in provider_specs(settings):
        state = states.get(spec.name)
        if state is not None and state.open_at(now) and state.breaker_open_until is not None:
            until = state.breaker_open_until.isoformat(timespec="seconds").replace("+00:00", "Z")
            detail = f"{spec.name}: breaker open until {until} ({state.reason})"
            checks.append(Check(f"gate: {spec.name}", FAIL, detail, "check the provider's key, billing or status"))
        else:
            checks.append(Check(f"gate: {spec.name}", OK, f"{spec.name}: configured, {spec.base_url}"))
    return checks


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# -- smoke ---------------------------------------------------------------------
class SmokeFailure(Exception):
    pass


@dataclass(frozen=True)
class SmokeOptions:
    url: str
    api_key: str | None = None
    business_type: str = "cafe"
    location: str = "Helsinki"
    max_results: int = 3
    timeout: float = 120.0
    operator_token: str | None = None  # for the detailed /healthz of a deployment that sets one


def smoke(options: SmokeOptions, report: Callable[[Check], None]) -> None:
    """The original backend test script as a command: create, follow, verify. Raises SmokeFailure."""
    headers = {"Authorization": f"Bearer {options.api_key}"} if options.api_key else {}
    with httpx.Client(base_url=options.url.rstrip("/"), headers=headers, timeout=30) as client:
        for step in _smoke_steps(client, options):
            report(step)


def _expect(response: httpx.Response, status: int, what: str) -> Any:
    if response.status_code != status:
        raise SmokeFailure(f"{what}: expected HTTP {status}, got {response.status_code}: {response.text[:300]}")
    try:
        return response.json()
    except json.JSONDecodeError:
        raise SmokeFailure(f"{what}: the answer is not JSON") from None


def _smoke_steps(client: httpx.Client, options: SmokeOptions) -> Iterator[Check]:
    try:
        operator = {"Authorization": f"Bearer {options.operator_token}"} if options.operator_token else {}
        health = client.get("/healthz", headers=operator)
    except httpx.HTTPError as exc:
        raise SmokeFailure(f"cannot reach {options.url}: {exc}") from None
    body = _expect(health, 200, "GET /healthz")
    yield Check("health", OK if body.get("status") == "ok" else WARN, json.dumps(body))

    started = time.monotonic()
    submitted = _expect(
        client.post(
            "/api/v1/campaigns",
            json={
                "business_type": options.business_type,
                "location": options.location,
                "max_results": options.max_results,
            },
        ),
        202,
        "POST /api/v1/campaigns",
    )
    job_id, campaign_id = submitted["job_id"], submitted["campaign_id"]
    if submitted.get("session_token"):
        client.headers["Authorization"] = f"Bearer {submitted['session_token']}"
    yield Check("submit", OK, f"job {job_id} in {1000 * (time.monotonic() - started):.0f} ms")

    seqs: list[int] = []
    progress: list[int] = []
    last: dict[str, Any] = {}
    try:
        with connect_sse(client, "GET", f"/api/v1/jobs/{job_id}/events", timeout=options.timeout) as source:
            if source.response.status_code != 200:
                raise SmokeFailure(f"event stream: HTTP {source.response.status_code}")
            for message in source.iter_sse():
                if message.event != "message":
                    continue
                event = json.loads(message.data)
                seqs.append(int(message.id))
                progress.append(event["data"]["progress"])
                last = event
                if time.monotonic() - started > options.timeout:
                    raise SmokeFailure(f"the job did not finish within {options.timeout:.0f} s")
    except httpx.HTTPError as exc:
        raise SmokeFailure(f"event stream broke: {exc}") from None
    if seqs != list(range(1, len(seqs) + 1)):
        raise SmokeFailure(f"event sequence has gaps or repeats: {seqs}")
    if progress != sorted(progress):
        raise SmokeFailure(f"progress went down: {progress}")
    status = last.get("data", {}).get("status")
    if status != "completed":
        raise SmokeFailure(f"the job ended {status}: {last.get('data', {}).get('error')}")
    yield Check("events", OK, f"{len(seqs)} events, gap-free, progress 0→100 in {time.monotonic() - started:.1f} s")

    job = _expect(client.get(f"/api/v1/jobs/{job_id}"), 200, "GET job")
    if job["status"] != "completed" or job["progress"] != 100:
        raise SmokeFailure(f"job record says {job['status']} at {job['progress']}%")
    campaign = _expect(client.get(f"/api/v1/campaigns/{campaign_id}"), 200, "GET campaign")
    leads = _expect(client.get(f"/api/v1/campaigns/{campaign_id}/leads"), 200, "GET leads")
    if leads["total"] != campaign["results_count"] or leads["total"] != job["metrics"].get("leads"):
        raise SmokeFailure(
            f"records disagree: {leads['total']} leads, campaign says {campaign['results_count']}, "
            f"job says {job['metrics'].get('leads')}"
        )
    if leads["total"] == 0 and not job["metrics"].get("exhausted"):
        raise SmokeFailure("no leads and the job does not say the sources were exhausted")
    yield Check("records", OK, f"job completed, campaign and {leads['total']} leads consistent")
