"""The contact waterfall in a campaign: source data, the website, Hunter, verification — by tier, within the
lead cap and the budget, and what a failing or slow provider leaves."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from prospectpro.config import Settings
from prospectpro.domain.clock import utcnow
from prospectpro.jobs.queue import get_job, list_events
from prospectpro.store import suppression
from prospectpro.store.db import Database
from prospectpro.store.schema import api_calls
from tests.contacts.paid import paid_gate, paid_settings
from tests.contacts.waterfall_rig import business, lead_rows, pipeline, spent
from tests.pipeline import conftest as pipeline_fixtures
from tests.pipeline.conftest import submit, wait_until_done
from tests.sim import hunter as hunter_sim
from tests.sim import neverbounce as nb_sim
from tests.sim import sites as sites_sim
from tests.sim.server import Simulator
from tests.support import stop_processes, wait_until_terminal

places_db = pipeline_fixtures.places_db  # the campaign pipeline's fixtures: bundled places, in-process workers
run_worker = pipeline_fixtures.run_worker


def _campaign(db: Database, settings: Any, run_worker: Any, businesses: list[Any], gate: Any, *, tier: str = "professional",
              budget: str = "5", concurrency: int = 8, **fields: Any) -> tuple[Any, dict[str, dict[str, Any]]]:
    run_worker(db, pipeline(businesses, settings, gate, concurrency=concurrency))
    job = submit(db, settings, tier=tier, budget_limit=budget, min_score=0, max_results=len(businesses), **fields)
    done = wait_until_done(db, job.id, timeout=60)
    assert done.status.value == "completed", done.error
    assert done.campaign_id is not None
    return done, lead_rows(db, done.campaign_id)


def test_an_on_domain_website_email_never_calls_hunter_and_is_verified(places_db: Database, sim: Simulator,
                                                                       run_worker: Any) -> None:
    sites = sites_sim.install(sim, catalogue=False)
    url = sites.add_business("kahvila1.fi", email="info@kahvila1.fi", phone="+358401234567")
    hunter = hunter_sim.install(sim, {"kahvila1.fi": [hunter_sim.email("sales@kahvila1.fi")]},
                                api_key="sim-hunter-SECRET-1234")
    nb = nb_sim.install(sim, api_key="secret_sim-neverbounce-5678")
    settings = paid_settings(sim)
    job, rows = _campaign(places_db, settings, run_worker, [business(1, url)], paid_gate(places_db, settings))
    lead = rows["Cafe 1"]
    assert lead["email"] == "info@kahvila1.fi"
    assert str(lead["email_source"]).startswith("website:") and lead["email_source"].endswith("/contact")
    assert lead["email_status"] == "valid"
    assert sim.count(hunter_sim.DOMAIN_SEARCH_PATH) == 0 and hunter.credits_used == 0
    assert nb.checks["info@kahvila1.fi"] == 1
    steps = {s["provider"]: s for s in lead["enrichment"]["steps"]}
    assert steps["hunter"] == {"provider": "hunter", "outcome": "skipped", "reason": "not needed"}
    assert steps["verify"]["outcome"] == "verified" and steps["verify"]["via"] == "neverbounce"
    assert lead["enrichment"]["phones"][0]["source"].startswith("website:")
    assert lead["score_breakdown"]["email"] == 15 and lead["score_breakdown"]["email_verified"] == 10
    assert Decimal(str(lead["cost"])) == Decimal("0.008")


def test_a_hunter_address_verified_by_hunter_stops_the_waterfall(places_db: Database, sim: Simulator,
                                                                  run_worker: Any) -> None:
    sites = sites_sim.install(sim, catalogue=False)
    url = sites.add_business("kahvila2.fi")  # no address on the site
    hunter_sim.install(sim, {"kahvila2.fi": [
        hunter_sim.email("info@kahvila2.fi", confidence=96, verified=(utcnow().date().isoformat(), "valid")),
        hunter_sim.email("old@kahvila2.fi", confidence=70),
    ]}, api_key="sim-hunter-SECRET-1234")
    nb = nb_sim.install(sim, api_key="secret_sim-neverbounce-5678")
    settings = paid_settings(sim)
    _, rows = _campaign(places_db, settings, run_worker, [business(2, url)], paid_gate(places_db, settings))
    lead = rows["Cafe 2"]
    assert (lead["email"], lead["email_source"], lead["email_status"]) == ("info@kahvila2.fi", "hunter", "valid")
    assert lead["email_confidence"] == 96
    assert lead["enrichment"]["verification"]["by"] == "hunter"
    assert {e["address"] for e in lead["enrichment"]["emails"]} == {"info@kahvila2.fi", "old@kahvila2.fi"}
    assert nb.billed == 0 and sim.count("/v4/") == 0


def test_base_never_calls_a_paid_provider(places_db: Database, sim: Simulator, run_worker: Any) -> None:
    sites = sites_sim.install(sim, catalogue=False)
    with_site = sites.add_business("kahvila3.fi", email="info@kahvila3.fi")
    without = sites.add_business("kahvila4.fi")
    hunter_sim.install(sim, {"kahvila4.fi": [hunter_sim.email("info@kahvila4.fi")]}, api_key="sim-hunter-SECRET-1234")
    nb_sim.install(sim, api_key="secret_sim-neverbounce-5678")
    settings = paid_settings(sim)
    job, rows = _campaign(places_db, settings, run_worker, [business(3, with_site), business(4, without)],
                          paid_gate(places_db, settings), tier="base")
    assert sim.count("/v2/") == 0 and sim.count("/v4/") == 0
    assert rows["Cafe 3"]["email"] == "info@kahvila3.fi" and rows["Cafe 3"]["email_status"] == "unverified"
    assert rows["Cafe 4"]["email"] is None and rows["Cafe 4"]["email_status"] is None
    reasons = {s["provider"]: s.get("reason") for s in rows["Cafe 4"]["enrichment"]["steps"]}
    assert reasons["hunter"] == "tier" and reasons["verify"] == "no email"
    assert job.metrics["total_cost"] == "0"


def test_suppressed_addresses_are_never_stored_or_verified(places_db: Database, sim: Simulator,
                                                           run_worker: Any) -> None:
    sites = sites_sim.install(sim, catalogue=False)
    url = sites.add_business("kahvila5.fi", email="info@kahvila5.fi")
    hunter_sim.install(sim, {"kahvila5.fi": [hunter_sim.email("myynti@kahvila5.fi", confidence=80)]},
                       api_key="sim-hunter-SECRET-1234")
    nb = nb_sim.install(sim, api_key="secret_sim-neverbounce-5678")
    with places_db.write() as conn:
        suppression.add(conn, "info@kahvila5.fi", "added by a user", utcnow())
    settings = paid_settings(sim)
    _, rows = _campaign(places_db, settings, run_worker, [business(5, url)], paid_gate(places_db, settings))
    lead = rows["Cafe 5"]
    assert lead["email"] == "myynti@kahvila5.fi"  # the next address; the suppressed one is nowhere
    assert "info@kahvila5.fi" not in str(lead)
    assert "info@kahvila5.fi" not in nb.checks


def test_hunter_451_drops_and_suppresses_the_person(places_db: Database, sim: Simulator, run_worker: Any) -> None:
    sites = sites_sim.install(sim, catalogue=False)
    url = sites.add_business("kahvila6.fi")
    state = hunter_sim.install(sim, {"kahvila6.fi": [hunter_sim.email("jane@kahvila6.fi", kind="personal")]},
                               api_key="sim-hunter-SECRET-1234")
    state.claimed.add("jane@kahvila6.fi")
    state.claimed_domains.add("kahvila6.fi")
    nb_sim.install(sim, api_key="secret_sim-neverbounce-5678")
    settings = paid_settings(sim)
    _, rows = _campaign(places_db, settings, run_worker, [business(6, url)], paid_gate(places_db, settings),
                        tier="enterprise")
    lead = rows["Cafe 6"]
    assert lead["email"] is None
    step = next(s for s in lead["enrichment"]["steps"] if s["provider"] == "hunter")
    assert step["outcome"] == "forbidden" and step["claimed"] == "jane@kahvila6.fi"
    with places_db.read() as conn:
        assert suppression.suppressed(conn, ["jane@kahvila6.fi"]) == {"jane@kahvila6.fi"}


def test_more_than_the_bulk_minimum_goes_through_the_bulk_jobs_api(places_db: Database, sim: Simulator,
                                                                  run_worker: Any) -> None:
    sites = sites_sim.install(sim, catalogue=False)
    businesses = [business(i, sites.add_business(f"bulk{i}.fi", email=f"info@bulk{i}.fi")) for i in range(8)]
    hunter_sim.install(sim, api_key="sim-hunter-SECRET-1234")
    nb = nb_sim.install(sim, {"info@bulk0.fi": "catchall"}, api_key="secret_sim-neverbounce-5678")
    settings = paid_settings(sim, neverbounce_bulk_min=3)
    job, rows = _campaign(places_db, settings, run_worker, businesses, paid_gate(places_db, settings))
    assert sim.count(nb_sim.CHECK_PATH) == 0 and sim.count(nb_sim.JOBS_CREATE_PATH) >= 1
    assert sorted(nb.bulk_verified) == sorted(f"info@bulk{i}.fi" for i in range(8))
    assert all(v == 1 for v in nb.bulk_verified.values())
    assert rows["Cafe 0"]["email_status"] == "accept_all"
    assert {rows[f"Cafe {i}"]["email_status"] for i in range(1, 8)} == {"valid"}
    assert spent(places_db, job.id, "neverbounce") == Decimal("0.008") * 8


def test_sixteen_way_concurrency_never_spends_past_a_budget_of_a_few_verifications(
    places_db: Database, sim: Simulator, run_worker: Any
) -> None:
    sites = sites_sim.install(sim, catalogue=False)
    businesses = [business(i, sites.add_business(f"budget{i}.fi", email=f"info@budget{i}.fi")) for i in range(24)]
    hunter_sim.install(sim, api_key="sim-hunter-SECRET-1234")
    nb = nb_sim.install(sim, api_key="secret_sim-neverbounce-5678", latency=0.02)
    settings = paid_settings(sim, neverbounce_bulk_min=1000)
    budget = Decimal("0.008") * 3 + Decimal("0.004")  # three and a half verifications
    job, rows = _campaign(places_db, settings, run_worker, businesses, paid_gate(places_db, settings),
                          budget=str(budget), concurrency=16)
    assert spent(places_db, job.id) <= budget
    assert nb.billed == 3
    assert len(rows) == 24 and all(r["email"] for r in rows.values())  # the free steps' data is kept
    assert sum(r["email_status"] == "valid" for r in rows.values()) == 3
    assert {r["email_status"] for r in rows.values()} == {"valid", "unverified"}
    assert job.metrics["budget_exhausted"] is True
    assert job.metrics["skipped"]["over_budget"] == 21


def test_an_always_failing_provider_and_a_slow_one_leave_the_free_data_and_are_named(
    places_db: Database, sim: Simulator, run_worker: Any
) -> None:
    sites = sites_sim.install(sim, catalogue=False)
    businesses = [business(i, sites.add_business(f"fail{i}.fi", email=f"info@gmail-{i}.fi" if i % 2 else None))
                  for i in range(10)]
    hunter_sim.install(sim, api_key="sim-hunter-SECRET-1234")
    sim.fail("/v2/", hunter_sim.error(500, "server_error", "boom"), times=10_000)
    nb_sim.install(sim, api_key="secret_sim-neverbounce-5678")
    sim.set_latency(nb_sim.CHECK_PATH, 1.0)  # past the client's timeouts: every check times out
    settings = paid_settings(sim, neverbounce_bulk_min=1000)
    started = time.monotonic()
    slow = {"neverbounce": {"read_timeout": 0.2, "total_timeout": 0.3, "max_attempts": 2}}
    job, rows = _campaign(places_db, settings, run_worker, businesses, paid_gate(places_db, settings, slow),
                          concurrency=10)
    assert time.monotonic() - started < 15
    failed = {f["source"] for f in job.metrics["failed_sources"]}
    assert {"hunter", "neverbounce"} <= failed
    assert len(rows) == 10
    assert {rows[f"Cafe {i}"]["email"] for i in (1, 3, 5, 7, 9)} == {f"info@gmail-{i}.fi" for i in (1, 3, 5, 7, 9)}
    assert {rows[f"Cafe {i}"]["email_status"] for i in (1, 3, 5, 7, 9)} == {"unverified"}
    with places_db.read() as conn:
        paid = conn.execute(select(api_calls.c.cost).where(api_calls.c.job_id == job.id,
                                                           api_calls.c.status == "ok")).scalars().all()
    assert sum((Decimal(str(c)) for c in paid), Decimal(0)) == 0
    assert get_job(places_db, job.id).metrics["total_cost"] == "0"


def _crash_env(data_dir: Any, sim: Simulator, n: int) -> dict[str, str]:
    import os
    from pathlib import Path

    return {
        **os.environ,
        "PROSPECTPRO_DATA_DIR": str(data_dir),
        "PROSPECTPRO_LEASE_SECONDS": "1.5",
        "PROSPECTPRO_POLL_INTERVAL": "0.05",
        "PROSPECTPRO_HUNTER_API_KEY": "sim-hunter-SECRET-1234",
        "PROSPECTPRO_HUNTER_BASE_URL": sim.url,
        "PROSPECTPRO_HUNTER_RATE_PER_SECOND": "4",  # gaps between calls, in which the worker is killed
        "PROSPECTPRO_NEVERBOUNCE_API_KEY": "secret_sim-neverbounce-5678",
        "PROSPECTPRO_NEVERBOUNCE_BASE_URL": sim.url,
        "PROSPECTPRO_NEVERBOUNCE_RATE_PER_SECOND": "4",
        "CRASH_BUSINESSES": str(n),
        "PYTHONPATH": str(Path(__file__).parents[2]),
    }


def _crash_run(data_dir: Any, sim: Simulator, n: int, *, kill: bool) -> tuple[str, Any]:
    import signal
    import subprocess
    import sys

    from prospectpro.bootstrap import open_database
    from prospectpro.store.schema import job_candidates

    env = _crash_env(data_dir, sim, n)
    settings = _settings_for(sim, data_dir)
    db = open_database(settings)
    job = submit(db, settings, tier="professional", budget_limit="5", min_score=0, max_results=n)

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "tests.contacts.crash_worker"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def settled() -> tuple[int, int]:
        with db.read() as conn:
            done = conn.execute(select(job_candidates.c.id).where(job_candidates.c.job_id == job.id,
                                                                  job_candidates.c.enrich_state == "done")).all()
            reserved = conn.execute(select(api_calls.c.id).where(api_calls.c.job_id == job.id,
                                                                 api_calls.c.status == "reserved")).all()
        return len(done), len(reserved)

    procs = [start()]
    try:
        if kill:
            deadline = time.monotonic() + 60
            while True:
                assert time.monotonic() < deadline, "nothing was enriched"
                assert procs[0].poll() is None, procs[0].stderr.read().decode()  # type: ignore[union-attr]
                done, reserved = settled()
                if done >= 3 and reserved == 0:
                    break
                time.sleep(0.005)
            procs[0].send_signal(signal.SIGKILL)
            procs[0].wait()
            procs.append(start())
        wait_until_terminal(db, job.id, timeout=60)
    finally:
        stop_processes(procs)
    final = get_job(db, job.id)
    assert final.status.value == "completed", final.error
    return job.id, db


@pytest.mark.slow
def test_never_twice_a_killed_worker_and_the_owners_next_campaign(tmp_path: Any, sim: Simulator,
                                                                    run_worker: Any) -> None:
    from prospectpro.bootstrap import build_gate
    from prospectpro.pipeline import enrich
    from prospectpro.pipeline.runner import Pipeline
    from prospectpro.providers.osm_email import OsmEmail
    from tests.contacts.crash_worker import businesses
    from tests.contacts.waterfall_rig import Listed

    n = 8
    domains = {f"crash{i}.fi": [hunter_sim.email(f"info@crash{i}.fi")] for i in range(n) if i % 3}
    hunter = hunter_sim.install(sim, domains, api_key="sim-hunter-SECRET-1234")
    nb = nb_sim.install(sim, api_key="secret_sim-neverbounce-5678")
    sim.set_latency("/v2/", 0.05)
    sim.set_latency("/v4/", 0.05)

    _crash_run(tmp_path / "clean", sim, n, kill=False)
    clean = (dict(hunter.searches), dict(nb.checks), hunter.credits_used, nb.billed)
    hunter.searches.clear()
    nb.checks.clear()
    hunter.credits_used, nb.billed = 0, 0

    job_id, db = _crash_run(tmp_path / "crash", sim, n, kill=True)
    crashed = (dict(hunter.searches), dict(nb.checks), hunter.credits_used, nb.billed)
    assert crashed == clean and sum(clean[0].values()) == n and len(clean[1]) == len(domains)
    assert sum(e.kind == "taken_over" for e in list_events(db, job_id)) == 1

    # The same owner's next campaign over the same businesses, within the cache time: nothing is paid.
    settings = _settings_for(sim, tmp_path / "crash")
    run_worker(db, Pipeline(sources=[Listed(businesses(n))],  # type: ignore[arg-type]
                            enrichers=[OsmEmail(), enrich.HunterStep(settings), enrich.VerifyStep(settings)],
                            gate=build_gate(db, settings)))
    again = submit(db, settings, tier="professional", budget_limit="5", min_score=0, max_results=n,
                   include_delivered=True)
    done = wait_until_done(db, again.id, timeout=60)
    assert done.status.value == "completed", done.error
    assert (dict(hunter.searches), dict(nb.checks)) == (clean[0], clean[1])
    assert spent(db, again.id) == 0 and done.metrics["total_cost"] == "0"
    assert done.metrics["providers"]["hunter"]["reused"] == n


def _settings_for(sim: Simulator, data_dir: Any) -> Any:
    return Settings(data_dir=data_dir, hunter_api_key="sim-hunter-SECRET-1234", hunter_base_url=sim.url,
                    neverbounce_api_key="secret_sim-neverbounce-5678", neverbounce_base_url=sim.url)


def test_a_cancel_is_seen_within_a_second_while_many_fetches_are_in_flight(
    places_db: Database, sim: Simulator, run_worker: Any
) -> None:
    from prospectpro.jobs.queue import request_cancel

    sites = sites_sim.install(sim, catalogue=False, latency=3.0)  # every page takes 3 s
    businesses = [business(i, sites.add_business(f"hidas{i}.fi", email=f"info@hidas{i}.fi")) for i in range(20)]
    hunter_sim.install(sim, api_key="sim-hunter-SECRET-1234")
    nb_sim.install(sim, api_key="secret_sim-neverbounce-5678")
    settings = paid_settings(sim, website_page_timeout=10.0, website_site_timeout=20.0)
    run_worker(places_db, pipeline(businesses, settings, paid_gate(places_db, settings), concurrency=16))
    job = submit(places_db, settings, tier="professional", min_score=0, max_results=20)
    deadline = time.monotonic() + 20
    while sites.count() < 10:  # many fetches in flight
        assert time.monotonic() < deadline
        time.sleep(0.02)
    asked = time.monotonic()
    request_cancel(places_db, job.id, job.owner_id)
    while not get_job(places_db, job.id).status.terminal:
        assert time.monotonic() - asked < 5
        time.sleep(0.02)
    assert time.monotonic() - asked < 1.5
    assert get_job(places_db, job.id).status.value == "cancelled"


def test_enterprise_finds_and_verifies_a_named_decision_maker_professional_keeps_role_addresses_only(
    places_db: Database, sim: Simulator, run_worker: Any
) -> None:
    sites = sites_sim.install(sim, catalogue=False)
    url = sites.add_business("paatos.fi", email="info@paatos.fi")
    hunter = hunter_sim.install(sim, {"paatos.fi": [
        hunter_sim.email("info@paatos.fi", confidence=90),
        hunter_sim.email("anna.omistaja@paatos.fi", kind="personal", confidence=88, first_name="Anna",
                         last_name="Omistaja", position="Owner", seniority="executive"),
        hunter_sim.email("ville@paatos.fi", kind="personal", confidence=70, first_name="Ville", position="Barista"),
    ]}, api_key="sim-hunter-SECRET-1234")
    nb = nb_sim.install(sim, {"anna.omistaja@paatos.fi": "catchall"}, api_key="secret_sim-neverbounce-5678")
    settings = paid_settings(sim)
    gate = paid_gate(places_db, settings)
    _, rows = _campaign(places_db, settings, run_worker, [business(7, url)], gate, tier="enterprise")
    lead = rows["Cafe 7"]
    assert lead["email"] == "info@paatos.fi" and lead["email_status"] == "valid"
    person = lead["enrichment"]["contact_person"]
    assert person == {"email": "anna.omistaja@paatos.fi", "name": "Anna Omistaja", "position": "Owner",
                      "source": "hunter", "email_status": "accept_all"}
    assert nb.checks == {"info@paatos.fi": 1, "anna.omistaja@paatos.fi": 1}
    assert sim.calls_to(hunter_sim.DOMAIN_SEARCH_PATH)[0].arg("type") is None  # personal results asked for

    sim.reset_calls()
    again = submit(places_db, settings, tier="professional", budget_limit="5", min_score=0, max_results=1,
                   include_delivered=True)
    done = wait_until_done(places_db, again.id)
    assert done.campaign_id is not None
    lead = lead_rows(places_db, done.campaign_id)["Cafe 7"]
    assert lead["enrichment"]["contact_person"] is None
    assert "anna.omistaja" not in str(lead) and hunter.searches["paatos.fi"] == 1  # site had info@: no Hunter
