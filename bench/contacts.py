"""Contacts (issue 11): a 100-lead professional campaign's contact waterfall vs the original product's algorithm.

    .venv/bin/python bench/contacts.py [--leads 100]

Both in the same run, against the simulators on 127.0.0.1 with the issue's latencies and limits: websites
200 ms a page (our politeness delay, 0.5 s, between two requests to one host), Hunter 400 ms at 15/s,
NeverBounce 300 ms at 10/s (bulk jobs verified at the same 10 addresses a second).

- ours: the whole campaign (submit → completed) through an in-process worker, the product's gate, pipeline
  steps and default concurrency; SQLite in a temp dir;
- baseline (the original): for each lead in turn, Hunter's domain search, then one NeverBounce check of its
  first address, each call awaited before the next; no website step;
- floor: the largest of Hunter calls ÷ 15/s, verifications ÷ 10/s, and the longest single site's requests ×
  (200 ms + politeness delay).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the simulators live in tests/sim

from prospectpro.bootstrap import build_gate, open_database  # noqa: E402
from prospectpro.config import Settings  # noqa: E402
from prospectpro.domain.campaign import CampaignRequest  # noqa: E402
from prospectpro.jobs import queue  # noqa: E402
from prospectpro.jobs.worker import Worker, WorkerConfig  # noqa: E402
from prospectpro.pipeline.kind import campaign_kind  # noqa: E402
from prospectpro.pipeline.runner import Pipeline, build_pipeline  # noqa: E402
from prospectpro.services.submissions import submit_campaign  # noqa: E402
from prospectpro.store.schema import LOCAL_USER_ID, api_calls, leads  # noqa: E402
from tests.contacts.waterfall_rig import Listed, business  # noqa: E402
from tests.sim import hunter as hunter_sim  # noqa: E402
from tests.sim import neverbounce as nb_sim  # noqa: E402
from tests.sim import sites as sites_sim  # noqa: E402
from tests.sim.server import Simulator  # noqa: E402

HUNTER_KEY = "bench-hunter-key"
NB_KEY = "secret_bench-nb-key"
PAGE_S, HUNTER_S, NB_S = 0.2, 0.4, 0.3
HUNTER_RATE, NB_RATE = 15.0, 10.0
HOST_DELAY = 0.5


def dataset(n: int, sites: sites_sim.SitesSim) -> tuple[list[object], dict[str, list[dict[str, object]]]]:
    """Shapes as a city's cafés have them: 40 % publish an on-domain address on their site, 10 % a webmail one,
    40 % none (Hunter knows three in four of those), 10 % have no website but an e-mail in OSM."""
    businesses: list[object] = []
    domains: dict[str, list[dict[str, object]]] = {}
    today = datetime.now(UTC).date().isoformat()
    for i in range(n):
        kind = i % 10
        name = f"kahvila{i}.fi"
        if kind == 9:
            businesses.append(business(i, None, email=f"kahvila{i}@gmail.com"))
            continue
        if kind <= 3:
            url = sites.add_business(name, email=f"info@{name}", phone="+358401234567")
        elif kind == 4:
            url = sites.add_business(name, email=f"kahvila{i}@gmail.com")
        else:
            url = sites.add_business(name)
        businesses.append(business(i, url))
        if kind in (4, 5, 6, 7):
            verified = (today, "valid") if kind == 5 else None
            domains[name] = [
                hunter_sim.email(f"info@{name}", confidence=94, verified=verified),
                hunter_sim.email(f"anna.k@{name}", kind="personal", confidence=80),
            ]
        elif kind == 8:
            domains[name] = []
    return businesses, domains


def ours(
    n: int,
    sim: Simulator,
    sites: sites_sim.SitesSim,
    businesses: list[object],
    data: Path,
    bulk_min: int,
    concurrency: int | None,
) -> dict[str, float]:
    extra = {"enrich_concurrency": concurrency} if concurrency else {}
    settings = Settings(
        **extra,
        neverbounce_bulk_min=bulk_min,
        data_dir=data,
        poll_interval=0.05,
        allow_private_websites=True,
        website_host_delay=HOST_DELAY,
        hunter_api_key=HUNTER_KEY,
        hunter_base_url=sim.url,
        hunter_rate_per_second=HUNTER_RATE,
        neverbounce_api_key=NB_KEY,
        neverbounce_base_url=sim.url,
        neverbounce_rate_per_second=NB_RATE,
    )
    db = open_database(settings)
    gate = build_gate(db, settings)
    product = build_pipeline(db, settings, gate)
    pipeline = Pipeline(
        sources=[Listed(businesses)],
        enrichers=product.enrichers,  # type: ignore[arg-type]
        enrich_concurrency=product.enrich_concurrency,
        gate=gate,
    )
    worker = Worker(db, [campaign_kind(pipeline)], WorkerConfig(lease_seconds=30, poll_interval=0.05)).start()
    sim.reset_calls()
    sites.server.reset_calls()
    try:
        request = CampaignRequest(
            business_type="cafe",
            location="Helsinki",
            max_results=n,
            tier="professional",
            budget_limit=Decimal("50"),
            min_score=0,
        )
        started = time.monotonic()
        job = submit_campaign(db, settings, LOCAL_USER_ID, request).job
        while not queue.get_job(db, job.id).status.terminal:
            time.sleep(0.02)
        wall = time.monotonic() - started
    finally:
        worker.stop(timeout=10)
        gate.close()
    final = queue.get_job(db, job.id)
    assert final.status.value == "completed", final.error
    events = queue.list_events(db, job.id)
    t0 = events[0].created_at
    enriched = [(e.created_at - t0).total_seconds() for e in events if e.kind == "lead_enriched"]
    print(
        f"  lead_enriched events at {enriched[0]:.2f} s (first), {enriched[len(enriched) // 2]:.2f} s (median), "
        f"{enriched[-1]:.2f} s (last) after the job's first event"
    )
    with db.read() as conn:
        rows = conn.execute(select(leads).where(leads.c.campaign_id == final.campaign_id)).all()
        cost = sum(
            (
                Decimal(str(c))
                for c in conn.execute(select(api_calls.c.cost).where(api_calls.c.job_id == job.id)).scalars()
            ),
            Decimal(0),
        )
    hunter_calls = sim.count(hunter_sim.DOMAIN_SEARCH_PATH)
    singles = sim.count(nb_sim.CHECK_PATH)
    bulk_addresses = sum(len((c.json() or {}).get("input") or []) for c in sim.calls_to(nb_sim.JOBS_CREATE_PATH))
    verifications = singles + bulk_addresses
    per_site = {}
    for call in sites.server.calls_to("/"):
        host = call.headers.get("host", "").split(":")[0]
        per_site[host] = per_site.get(host, 0) + 1
    longest = max(per_site.values(), default=0)
    floor = max(hunter_calls / HUNTER_RATE, verifications / NB_RATE, longest * (PAGE_S + HOST_DELAY))
    with_email = [r for r in rows if r.email]
    verified = [r for r in rows if r.email_status == "valid"]
    from_site = [r for r in rows if (r.email_source or "").startswith("website:")]
    paid_calls = hunter_calls + singles + sim.count(nb_sim.JOBS_CREATE_PATH)
    return {
        "wall": wall,
        "floor": floor,
        "leads": len(rows),
        "with_email": len(with_email),
        "verified": len(verified),
        "from_site": len(from_site),
        "hunter_calls": hunter_calls,
        "verifications": verifications,
        "singles": singles,
        "bulk_jobs": sim.count(nb_sim.JOBS_CREATE_PATH),
        "longest_site": longest,
        "site_requests": sum(per_site.values()),
        "cost": float(cost),
        "paid_calls": paid_calls,
        "throttled": sum(1 for c in sim.calls_to("/v2/")) - hunter_calls - sim.count(hunter_sim.VERIFIER_PATH),
    }


def baseline(sim: Simulator, businesses: list[object]) -> dict[str, float]:
    from prospectpro.domain.normalize import website_domain

    sim.reset_calls()
    started = time.monotonic()
    found = 0
    with httpx.Client(base_url=sim.url, timeout=10) as client:
        for b in businesses:
            domain = website_domain(getattr(b, "website", None))
            # The original searched every lead: by its domain, else by its name (Hunter's `company`).
            where = {"domain": domain} if domain else {"company": getattr(b, "name", "")}
            response = client.get("/v2/domain-search", params={**where, "api_key": HUNTER_KEY})
            emails = ((response.json().get("data") or {}).get("emails") or []) if response.status_code == 200 else []
            first = emails[0]["value"] if emails else None
            if first:
                found += 1
                client.get("/v4/single/check", params={"key": NB_KEY, "email": first}).json()
    return {"wall": time.monotonic() - started, "with_email": found, "calls": sim.count("/v2/") + sim.count("/v4/")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=100)
    parser.add_argument("--bulk-min", type=int, default=25, help="PROSPECTPRO_NEVERBOUNCE_BULK_MIN (default 25)")
    parser.add_argument("--concurrency", type=int, default=None, help="PROSPECTPRO_ENRICH_CONCURRENCY (default: ours)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the original algorithm (~50 s)")
    args = parser.parse_args()
    with Simulator() as sim, tempfile.TemporaryDirectory() as tmp:
        sites = sites_sim.install(sim, catalogue=False, latency=PAGE_S)
        businesses, domains = dataset(args.leads, sites)
        hunter_sim.install(sim, domains, api_key=HUNTER_KEY, rate_per_second=HUNTER_RATE, latency=HUNTER_S)
        nb_sim.install(sim, api_key=NB_KEY, rate_per_second=NB_RATE, latency=NB_S, bulk_per_second=NB_RATE)
        sim.set_latency("/v4/", NB_S)
        mine = ours(args.leads, sim, sites, businesses, Path(tmp), args.bulk_min, args.concurrency)
        base = (
            baseline(sim, businesses) if not args.no_baseline else {"wall": float("nan"), "with_email": 0, "calls": 0}
        )
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, CPython {platform.python_version()}, {args.leads} leads")
    print(
        f"ours:     {mine['wall']:.2f} s  (floor {mine['floor']:.2f} s → {mine['wall'] / mine['floor']:.2f}× the floor)"
    )
    print(f"baseline: {base['wall']:.2f} s  → ours is {base['wall'] / mine['wall']:.1f}× faster")
    for key, value in mine.items():
        print(f"  {key}: {value:g}")
    print(f"  baseline with_email (unverified): {base['with_email']:g}, calls {base['calls']:g}")
    cost = Decimal(str(mine["cost"]))
    print(
        f"  $ per lead with an e-mail: {cost / max(1, int(mine['with_email'])):.4f}; "
        f"per verified: {cost / max(1, int(mine['verified'])):.4f}; "
        f"paid calls per lead with an e-mail: {mine['paid_calls'] / max(1, mine['with_email']):.2f}"
    )
    print(f"  share with an e-mail from the website alone: {mine['from_site'] / max(1, mine['leads']):.0%}")


if __name__ == "__main__":
    main()
