"""Privacy: the suppression list (CLI, API) and ``forget`` — from every lead, export and cached answer."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import String, cast, select
from typer.testing import CliRunner

from prospectpro.cli import app
from prospectpro.domain.clock import utcnow
from prospectpro.services import privacy
from prospectpro.services.export import leads_csv, leads_json, load_export
from prospectpro.services.users import create_user
from prospectpro.store import suppression
from prospectpro.store.campaigns import insert_campaigns
from prospectpro.store.db import Database
from prospectpro.store.leads import LEAD_COLUMNS, store_leads
from prospectpro.store.schema import api_calls, leads
from tests.api.conftest import start_server
from tests.contacts.paid import paid_gate, paid_settings
from tests.contacts.waterfall_rig import business, lead_rows, pipeline
from tests.pipeline import conftest as pipeline_fixtures
from tests.pipeline.conftest import submit, wait_until_done
from tests.sim import hunter as hunter_sim
from tests.sim import neverbounce as nb_sim
from tests.sim import sites as sites_sim
from tests.sim.server import Simulator

places_db = pipeline_fixtures.places_db
run_worker = pipeline_fixtures.run_worker


def test_suppress_add_list_remove_on_the_command_line(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"PROSPECTPRO_DATA_DIR": str(tmp_path / "data"), "PROSPECTPRO_IMPORT_BUNDLED_PLACES": "false"}
    added = runner.invoke(app, ["suppress", "add", "Jane@Kahvila.FI"], env=env)
    assert added.exit_code == 0, added.output
    assert "suppressed jane@kahvila.fi" in added.output
    assert runner.invoke(app, ["suppress", "add", "www.spam.fi"], env=env).exit_code == 0
    listed = runner.invoke(app, ["suppress", "list", "--json"], env=env)
    assert [(e["value"], e["kind"]) for e in json.loads(listed.output)] == [
        ("jane@kahvila.fi", "email"), ("spam.fi", "domain")]
    assert runner.invoke(app, ["suppress", "remove", "jane@kahvila.fi"], env=env).exit_code == 0
    missing = runner.invoke(app, ["suppress", "remove", "jane@kahvila.fi"], env=env)
    assert missing.exit_code != 0 and "not on the suppression list" in missing.output
    bad = runner.invoke(app, ["suppress", "add", "not an address"], env=env)
    assert bad.exit_code != 0
    forgot = runner.invoke(app, ["leads", "forget", "ann@kahvila.fi"], env=env)
    assert forgot.exit_code == 0 and "removed from 0 leads" in forgot.output
    db = Database(f"sqlite:///{tmp_path / 'data' / 'prospectpro.sqlite3'}")
    with db.read() as conn:
        assert suppression.suppressed(conn, ["ann@kahvila.fi", "x@spam.fi", "x@kahvila.fi"]) == {
            "ann@kahvila.fi", "x@spam.fi"}
    db.dispose()


def test_forget_removes_an_address_from_leads_exports_and_cached_answers(
    places_db: Database, sim: Simulator, run_worker: Any
) -> None:
    sites = sites_sim.install(sim, catalogue=False)
    url = sites.add_business("unohda.fi")
    hunter_sim.install(sim, {"unohda.fi": [hunter_sim.email("info@unohda.fi", confidence=95),
                                           hunter_sim.email("sales@unohda.fi", confidence=60)]},
                       api_key="sim-hunter-SECRET-1234")
    nb = nb_sim.install(sim, api_key="secret_sim-neverbounce-5678")
    settings = paid_settings(sim)
    gate = paid_gate(places_db, settings)
    run_worker(places_db, pipeline([business(1, url)], settings, gate))
    first = wait_until_done(places_db, submit(places_db, settings, tier="professional", min_score=0,
                                              max_results=1).id)
    assert first.campaign_id is not None
    assert lead_rows(places_db, first.campaign_id)["Cafe 1"]["email"] == "info@unohda.fi"

    done = privacy.forget(places_db, "INFO@unohda.fi")
    assert done["leads"] == 1 and done["cached_answers"] >= 2  # Hunter's answer and the verification's key
    lead = lead_rows(places_db, first.campaign_id)["Cafe 1"]
    assert lead["email"] is None and lead["email_status"] is None and lead["email_source"] is None
    assert "info@unohda.fi" not in str(lead) and "sales@unohda.fi" in str(lead["enrichment"])
    with places_db.read() as conn:
        cached = conn.execute(select(api_calls.c.request, api_calls.c.response).where(
            cast(api_calls.c.response, String).ilike("%info@unohda.fi%")
            | cast(api_calls.c.request, String).ilike("%info@unohda.fi%"))).all()
        assert cached == []
        assert suppression.suppressed(conn, ["info@unohda.fi"]) == {"info@unohda.fi"}
    data = load_export(places_db, first.campaign_id, first.owner_id)
    assert "info@unohda.fi" not in leads_csv(data) and "info@unohda.fi" not in leads_json(data.campaign, data.leads)

    # The next campaign over the same business neither stores nor verifies it again.
    checks = dict(nb.checks)
    again = wait_until_done(places_db, submit(places_db, settings, tier="professional", min_score=0, max_results=1,
                                              include_delivered=True).id)
    assert again.campaign_id is not None
    lead = lead_rows(places_db, again.campaign_id)["Cafe 1"]
    assert lead["email"] == "sales@unohda.fi" and "info@unohda.fi" not in str(lead)
    assert nb.checks["info@unohda.fi"] == checks["info@unohda.fi"]


def test_a_suppression_added_later_is_never_exported(db: Database) -> None:
    owner, campaign = _owner_with_lead(db, "later@kahvila.fi")
    with db.write() as conn:
        suppression.add(conn, "kahvila.fi", "added by a user", utcnow())
    data = load_export(db, campaign, owner)
    assert "later@kahvila.fi" not in leads_csv(data)


def _owner_with_lead(db: Database, email: str, name: str | None = None) -> tuple[str, str]:
    principal, _ = create_user(db, name or f"user-{uuid.uuid4().hex[:8]}")
    return principal.user_id, _lead_for(db, principal.user_id, email)


def test_the_api_forgets_an_address_in_the_callers_own_leads_only(tmp_path: Path) -> None:
    server = start_server(tmp_path, workers=0, import_bundled_places=False)
    try:
        alice, alice_key = create_user(server.db, "alice")
        campaign_a = _lead_for(server.db, alice.user_id, "shared@kahvila.fi")
        _, bob_campaign = _owner_with_lead(server.db, "shared@kahvila.fi", "bob")
        with server.client(alice_key) as client:
            response = client.post("/api/v1/leads/forget", json={"email": "shared@kahvila.fi"})
            assert response.status_code == 200, response.text
            assert response.json() == {"email": "shared@kahvila.fi", "leads": 1, "cached_answers": 0,
                                       "suppressed": True}
            added = client.post("/api/v1/suppressions", json={"value": "spam.fi"})
            assert added.status_code == 201 and added.json() == {"suppressed": "spam.fi"}
            bad = client.post("/api/v1/suppressions", json={"value": "no such thing"})
            assert bad.status_code == 422
        with server.client() as anonymous:
            assert anonymous.post("/api/v1/leads/forget", json={"email": "x@y.fi"}).status_code == 401
        with server.db.read() as conn:
            emails = dict(conn.execute(select(leads.c.campaign_id, leads.c.email)).all())
        assert emails[campaign_a] is None and emails[bob_campaign] == "shared@kahvila.fi"
    finally:
        server.stop()


def _lead_for(db: Database, owner: str, email: str) -> str:
    campaign = str(uuid.uuid4())
    now = utcnow()
    row: dict[str, Any] = dict.fromkeys(LEAD_COLUMNS)
    row.update(business_name="Kahvila", email=email, email_status="valid", email_source="hunter",
               confidence_score=80, score_breakdown={}, sources=["osm:node/1", "hunter"], cost=Decimal("0.01"),
               enrichment={"emails": [{"address": email, "source": "hunter"}]}, dedup_key="k1")
    with db.write() as conn:
        insert_campaigns(conn, [{"id": campaign, "owner_id": owner, "business_type": "cafe", "location": "Helsinki",
                                 "max_results": 1, "budget_limit": Decimal(5), "min_score": 0, "tier": "professional",
                                 "include_delivered": False, "status": "completed", "results_count": 1,
                                 "total_cost": Decimal(0), "created_at": now, "updated_at": now}])
        store_leads(conn, owner, campaign, [row], now)
    return campaign


def test_forget_on_both_stores_scrubs_leads_and_cached_answers(any_db: Database) -> None:
    from sqlalchemy import insert

    owner, campaign = _owner_with_lead(any_db, "who@kahvila.fi")
    now = utcnow()
    body = {"data": {"emails": [{"value": "who@kahvila.fi", "type": "personal"}, {"value": "info@kahvila.fi"}]}}
    with any_db.write() as conn:
        conn.execute(insert(api_calls).values(
            idempotency_key="k" * 64, request_hash="h" * 64, provider="hunter", operation="domain_search",
            request={"domain": "kahvila.fi"}, owner_id=owner, job_id=str(uuid.uuid4()), status="ok",
            cost=Decimal("0.0245"), saved_cost=Decimal(0), response=body, created_at=now, completed_at=now,
            reusable_until=now))
        suppression.add(conn, "who@kahvila.fi", "added by a user", now)
        suppression.add(conn, "who@kahvila.fi", "again", now)  # adding twice keeps one entry
    done = privacy.forget(any_db, "who@kahvila.fi", owner)
    assert done == {"email": "who@kahvila.fi", "leads": 1, "cached_answers": 1, "suppressed": True}
    with any_db.read() as conn:
        response, until = conn.execute(select(api_calls.c.response, api_calls.c.reusable_until)).one()
        email = conn.execute(select(leads.c.email).where(leads.c.campaign_id == campaign)).scalar_one()
        entries = suppression.entries(conn)
    assert response == {"data": {"emails": [{"value": "info@kahvila.fi"}]}} and until is None
    assert email is None
    assert [(e["value"], e["reason"]) for e in entries] == [("who@kahvila.fi", privacy.FORGOTTEN)]
