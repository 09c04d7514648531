"""The quote and the checks every submission passes (services/quote.py, services/submissions.py)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from prospectpro.config import Settings
from prospectpro.domain.campaign import CampaignConfig, CampaignRequest
from prospectpro.domain.clock import utcnow
from prospectpro.errors import Forbidden, InvalidInput
from prospectpro.gate.prices import price
from prospectpro.services.quote import quote
from prospectpro.services.submissions import SubmitRequest, submit_campaign, write_submissions
from prospectpro.services.users import create_session, create_user, set_monthly_budget
from prospectpro.store.db import Database
from prospectpro.store.schema import LOCAL_USER_ID, api_calls, campaigns, discovery_jobs

PAGE = price("google.text_search_enterprise")  # $0.035 a page of 20 places
HERE = "60.1699,24.9384,1500"  # coordinates resolve without the places index


def request(**fields: Any) -> CampaignRequest:
    return CampaignRequest.model_validate({"business_type": "cafe", "location": HERE, **fields})


@pytest.fixture
def google(tmp_path: Path) -> Settings:
    """An installation with a Google key (nothing is called: a quote makes no requests)."""
    return Settings(data_dir=tmp_path, google_places_api_key="sim-google-key", google_places_base_url="http://127.0.0.1:9")


def nothing_written(db: Database) -> None:
    with db.read() as conn:
        assert conn.execute(select(func.count()).select_from(discovery_jobs)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(campaigns)).scalar_one() == 0


def test_base_quotes_nothing_whatever_the_budget(db: Database, google: Settings) -> None:
    found = quote(db, google, LOCAL_USER_ID, request(budget_limit=Decimal("1000"), max_results=70))
    assert found.sources == ("osm", "website") and found.max_cost == 0 and found.estimated_cost == 0 and found.within_budget
    assert "free sources only" in found.notes[0]
    assert found.to_dict() == {
        "sources": ["osm", "website"],
        "max_cost": "0",
        "estimated_cost": "0",
        "within_budget": True,
        "notes": list(found.notes),
    }
    nothing_written(db)


@pytest.mark.parametrize(("wanted", "pages"), [(5, 3), (20, 3), (45, 3), (60, 3)])
def test_professional_quotes_pages_times_price(db: Database, google: Settings, wanted: int, pages: int) -> None:
    found = quote(db, google, LOCAL_USER_ID, request(tier="professional", max_results=wanted))
    assert found.sources == ("osm", "google", "website")
    assert found.max_cost == pages * PAGE
    assert 0 < found.estimated_cost <= found.max_cost
    assert found.within_budget
    assert found.to_dict()["max_cost"] == str(pages * PAGE).rstrip("0")
    assert any("Google Places" in note for note in found.notes)


def test_more_than_one_query_of_places_costs_more_pages(db: Database, google: Settings) -> None:
    one = quote(db, google, LOCAL_USER_ID, request(tier="professional", max_results=60))
    more = quote(db, google, LOCAL_USER_ID, request(tier="professional", max_results=200))
    assert more.max_cost > one.max_cost and more.max_cost % PAGE == 0


def test_a_tiny_budget_caps_the_quote_and_is_not_within_it(db: Database, google: Settings) -> None:
    found = quote(db, google, LOCAL_USER_ID, request(tier="professional", max_results=45, budget_limit="0.05"))
    assert found.max_cost == Decimal("0.05") and found.estimated_cost <= Decimal("0.05")
    assert found.within_budget is False
    assert any("$0.05" in note and "fewer leads" in note for note in found.notes)


def test_a_named_paid_source_the_budget_cannot_pay_is_refused(db: Database, google: Settings) -> None:
    tiny = request(tier="professional", sources=["osm", "google"], budget_limit="0.01")
    with pytest.raises(InvalidInput, match=r"one Google Places request costs \$0\.035 .* allows \$0\.01"):
        quote(db, google, LOCAL_USER_ID, tiny)
    with pytest.raises(InvalidInput, match="one Google Places request"):
        submit_campaign(db, google, LOCAL_USER_ID, tiny)
    nothing_written(db)
    # Not named: google is just one of the tier's sources, which the budget stops at once.
    found = quote(db, google, LOCAL_USER_ID, request(tier="professional", budget_limit="0.01"))
    assert found.max_cost == Decimal("0.01") and not found.within_budget


def test_a_zero_budget_professional_campaign_without_named_sources_is_accepted(db: Database, google: Settings) -> None:
    found = quote(db, google, LOCAL_USER_ID, request(tier="professional", budget_limit="0"))
    assert found.max_cost == 0 and not found.within_budget


def test_unknown_and_refused_sources(db: Database, google: Settings, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="unknown source yelp"):
        quote(db, google, LOCAL_USER_ID, request(sources=["yelp"]))
    with pytest.raises(InvalidInput, match="the base tier does not use google"):
        quote(db, google, LOCAL_USER_ID, request(sources=["google"]))
    with pytest.raises(InvalidInput, match="the base tier does not use google"):
        submit_campaign(db, google, LOCAL_USER_ID, request(sources=["google"]))
    keyless = Settings(data_dir=tmp_path)
    with pytest.raises(InvalidInput, match="google is not configured"):
        quote(db, keyless, LOCAL_USER_ID, request(tier="professional", sources=["google"]))
    # Without a key, professional is osm only, and costs nothing.
    found = quote(db, keyless, LOCAL_USER_ID, request(tier="professional"))
    assert found.sources == ("osm", "website") and found.max_cost == 0
    nothing_written(db)


def test_anonymous_sessions_use_base_only_unless_allowed(db: Database, google: Settings) -> None:
    session, _ = create_session(db)
    paid = request(tier="professional")
    with pytest.raises(Forbidden, match="anonymous sessions use the base tier"):
        quote(db, google, session.user_id, paid)
    with pytest.raises(Forbidden):
        quote(db, google, None, paid)  # a caller with no session yet is anonymous too
    outcome = write_submissions(db, google, [SubmitRequest(paid)])[0]  # would open a new session
    assert isinstance(outcome, Forbidden) and outcome.http_status == 403
    outcome = write_submissions(db, google, [SubmitRequest(paid, owner_id=session.user_id)])[0]
    assert isinstance(outcome, Forbidden)
    nothing_written(db)
    assert quote(db, google, session.user_id, request()).max_cost == 0  # base is fine
    allowed = google.model_copy(update={"anonymous_paid": True})
    assert quote(db, allowed, session.user_id, paid).max_cost == 3 * PAGE
    # An API-key user may use a paid tier.
    user, _ = create_user(db, "payer")
    assert quote(db, google, user.user_id, paid).max_cost == 3 * PAGE


def test_the_monthly_budget_left_caps_the_quote(db: Database, google: Settings) -> None:
    user, _ = create_user(db, "capped", monthly_budget=Decimal("0.05"))
    found = quote(db, google, user.user_id, request(tier="professional", max_results=45))
    assert found.max_cost == Decimal("0.05") and not found.within_budget
    assert any("monthly budget has $0.05 left" in note for note in found.notes)
    # What the owner spent this month counts: 0.04 spent leaves 0.01, less than one page.
    now = utcnow()
    with db.write() as conn:
        conn.execute(
            api_calls.insert().values(
                idempotency_key="k" * 64, request_hash="h" * 64, provider="google", operation="text_search",
                request={}, owner_id=user.user_id, job_id="an-earlier-job", campaign_id=None, status="ok",
                cost=Decimal("0.04"), saved_cost=Decimal("0"), created_at=now, completed_at=now,
            )
        )
    assert quote(db, google, user.user_id, request(tier="professional")).max_cost == Decimal("0.01")
    with pytest.raises(InvalidInput, match=r"monthly budget allows \$0\.01"):
        quote(db, google, user.user_id, request(tier="professional", sources=["google"]))
    set_monthly_budget(db, "capped", None)
    assert quote(db, google, user.user_id, request(tier="professional")).max_cost == 3 * PAGE


def test_a_submission_stores_the_sources_asked_for(db: Database, google: Settings) -> None:
    job = submit_campaign(db, google, LOCAL_USER_ID, request(tier="professional", sources=["google", "osm"])).job
    assert CampaignConfig.from_dict(job.config).sources == ("google", "osm")
    assert job.config["sources"] == ["google", "osm"]
    plain = submit_campaign(db, google, LOCAL_USER_ID, request()).job
    assert CampaignConfig.from_dict(plain.config).sources is None and "sources" not in plain.config
