"""Google Places (New) Text Search through the real gate, against the simulator: paging, errors, budget, quote."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select

from prospectpro.domain.area import Area
from prospectpro.gate.core import Gate
from prospectpro.gate.errors import ProviderError, ProviderErrorKind
from prospectpro.gate.prices import PRICES, price
from prospectpro.providers import google_places
from prospectpro.providers.google_places import SEARCH_FIELD_MASK, GooglePlacesSource, classify
from prospectpro.store.schema import api_calls
from tests.providers.conftest import HELSINKI, KEY, GoogleRig, fast_spec
from tests.sim import google as google_sim
from tests.sim.server import SimResponse

PAGE = PRICES["google.text_search_enterprise"]


def ledger_rows(rig: GoogleRig) -> list[dict[str, object]]:
    with rig.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(select(api_calls).order_by(api_calls.c.id))]


def test_price_table_and_override() -> None:
    assert price("google.text_search_enterprise") == Decimal("0.035")
    assert price("google.place_details_enterprise") == Decimal("0.02")
    assert price("google.text_search_enterprise", {"google.text_search_enterprise": "0.03"}) == Decimal("0.03")
    with pytest.raises(KeyError):
        price("google.nope")
    with pytest.raises(ValueError):
        price("google.text_search_pro", {"google.text_search_pro": "-1"})


def test_spec_needs_a_key_and_sends_it_in_the_header(google: GoogleRig) -> None:
    assert google_places.spec(google.settings.model_copy(update={"google_places_api_key": ""})) is None
    spec = google_places.spec(google.settings)
    assert spec is not None and spec.name == "google" and spec.paid and spec.secrets == (KEY,)
    assert spec.headers["X-Goog-Api-Key"] == KEY and not spec.params  # never in a URL
    assert "*" not in SEARCH_FIELD_MASK and " " not in SEARCH_FIELD_MASK


def test_45_wanted_makes_three_pages_each_once_differing_only_in_the_token(google: GoogleRig) -> None:
    found = google.source.discover(google.query(45), google.ctx(wanted=45))
    calls = google.state.search_calls
    assert len(calls) == 3 and found.requests == 3
    assert len(found) >= 45 and len({b.source_id for b in found}) == len(found)
    bodies = [c.json() for c in calls]
    assert "pageToken" not in bodies[0]
    assert bodies[1]["pageToken"] != bodies[2]["pageToken"]
    for later in bodies[1:]:
        assert {k: v for k, v in later.items() if k != "pageToken"} == bodies[0]
    first = bodies[0]
    assert first["textQuery"] == "Cafe in Helsinki" and first["pageSize"] == 20
    assert first["locationBias"]["circle"]["radius"] == 3000.0
    for call in calls:
        assert call.headers["x-goog-fieldmask"] == SEARCH_FIELD_MASK and call.headers["x-goog-api-key"] == KEY
    rows = ledger_rows(google)
    assert [r["status"] for r in rows] == ["ok"] * 3 and sum(Decimal(str(r["cost"])) for r in rows) == 3 * PAGE
    assert KEY not in json.dumps([r["request"] for r in rows])


def test_twenty_wanted_is_one_page_and_a_google_record_keeps_what_google_said(google: GoogleRig) -> None:
    found = google.source.discover(google.query(20), google.ctx(wanted=20))
    assert len(google.state.search_calls) == 1 and len(found) == 20
    b = found[0]
    assert b.ref == "google:ChIJsim0000" and b.name == "Sim Cafe ChIJsim 0"
    assert (b.street, b.housenumber, b.postcode, b.city, b.country) == ("Simulaattorinkatu", "1", "00100", "Helsinki", "FI")
    assert b.phone == "+358 9 100000" and b.website == "https://cafe-chijsim-0.example.fi/"
    assert b.rating == 3.5 and b.review_count == 10 and b.category == "cafe"
    assert b.source_url and b.source_url.startswith("https://maps.google.com/")
    assert b.fetched_at and b.expires_at and b.expires_at > b.fetched_at


def test_closed_and_outside_places_are_dropped_and_counted(google: GoogleRig) -> None:
    places = google_sim.grid(30)
    for i in (0, 3, 7):
        places[i]["businessStatus"] = "CLOSED_PERMANENTLY"
    places[5]["businessStatus"] = "CLOSED_TEMPORARILY"
    places[9]["location"] = {"latitude": 61.5, "longitude": 23.8}  # Tampere: far outside the 3 km circle
    google.state.places[:] = places
    found = google.source.discover(google.query(20), google.ctx(wanted=20))
    assert len(google.state.search_calls) == 2  # the first page had only 15 usable places
    assert found.skipped == {"closed": 4, "outside_area": 1}
    ids = {b.source_id for b in found}
    assert len(found) == 25 and not ids & {places[i]["id"] for i in (0, 3, 5, 7, 9)}


def test_no_results_is_an_empty_answer(google: GoogleRig) -> None:
    google.state.places.clear()
    found = google.source.discover(google.query(20), google.ctx())
    assert list(found) == [] and found.failure is None and len(google.state.search_calls) == 1


def test_more_than_60_wanted_uses_more_queries_and_never_exceeds_its_quote(google: GoogleRig) -> None:
    google.state.places[:] = google_sim.grid(60)
    # Each sub-circle query finds other places in the real API; here a text of its own.
    plans = google_places.search_plans("cafe", HELSINKI)
    assert len(plans) == 21 and all(p.radius_m == 1500.0 for p in plans[1:7])
    google.state.by_query = {}
    query = google.query(130)
    quote = google.source.quote(query)
    assert quote.max_requests == 9 and quote.max_cost == 9 * PAGE and quote.estimated_cost == 7 * PAGE
    found = google.source.discover(query, google.ctx(wanted=130, budget="50"))
    # The simulator gives every circle the same 60 places: after them nothing new, so it spends its quota.
    assert len(google.state.search_calls) <= quote.max_requests
    assert len(found) == 60


@pytest.mark.parametrize("wanted", [1, 20, 45, 60, 61, 125])
def test_the_quote_bounds_what_discovery_spends(google: GoogleRig, wanted: int) -> None:
    google.state.places[:] = []
    google.state.by_query = {
        text: google_sim.grid(60, prefix=f"ChIJq{n}") for n, text in enumerate(
            dict.fromkeys(p.text_query for p in google_places.search_plans("cafe", HELSINKI))
        )
    }
    query = google.query(wanted)
    quote = google.source.quote(query)
    google.source.discover(query, google.ctx(wanted=wanted, budget="100"))
    spent = sum(Decimal(str(r["cost"])) for r in ledger_rows(google))
    assert spent <= quote.max_cost and len(google.state.search_calls) <= quote.max_requests
    assert quote.estimated_cost <= quote.max_cost


def test_over_budget_stops_paging_and_keeps_what_was_found(google: GoogleRig) -> None:
    found = google.source.discover(google.query(45), google.ctx(wanted=45, budget="0.05"))
    assert found.budget_exhausted and len(found) == 20 and len(google.state.search_calls) == 1
    statuses = [r["status"] for r in ledger_rows(google)]
    assert statuses == ["ok", "over_budget"] or statuses == ["ok"]


def test_a_bad_key_fails_at_once_opens_the_breaker_and_the_key_stays_out_of_the_error(google: GoogleRig) -> None:
    google.state.api_key = "another-key"  # the simulator now refuses ours, echoing it back
    found = google.source.discover(google.query(20), google.ctx())
    assert list(found) == [] and found.failure is not None
    assert found.failure.kind == ProviderErrorKind.auth
    assert "PERMISSION_DENIED" in found.failure.reason and "API_KEY_INVALID" in found.failure.reason
    assert KEY not in found.failure.reason and KEY not in str(found.failure)
    assert len(google.state.search_calls) == 1  # not retried
    again = google.source.discover(google.query(20), google.ctx())
    assert again.failure is not None and again.failure.kind == ProviderErrorKind.breaker_open
    assert len(google.state.search_calls) == 1  # the breaker did not call
    rows = ledger_rows(google)
    assert KEY not in json.dumps([{k: str(v) for k, v in r.items()} for r in rows])


@pytest.mark.parametrize("retry_after", ["2", None])
def test_429_is_retried_after_retry_after_or_a_backoff(google: GoogleRig, retry_after: str | None) -> None:
    waits: list[float] = []
    spec = replace(fast_spec(google.settings), backoff_max=10.0)
    gate = Gate(google.db, google.settings, [spec], sleep=waits.append)
    google.sim.fail(google_sim.SEARCH_PATH, google_sim.rate_limited(retry_after))
    ctx = replace(google.ctx(), gate=gate)
    found = google.source.discover(google.query(20), ctx)
    assert len(found) == 20 and found.failure is None and len(google.state.search_calls) == 2
    if retry_after is not None:
        assert 2.0 in waits
    else:
        assert waits and all(w <= 0.01 + 1e-9 for w in waits if w > 0)  # full jitter of the first backoff
    assert [r["status"] for r in ledger_rows(google)] == ["ok"]  # one row, one cost, for the retried page
    gate.close()


@pytest.mark.parametrize("fault", [google_sim.internal, google_sim.unavailable])
def test_5xx_is_retried(google: GoogleRig, fault: object) -> None:
    google.sim.fail(google_sim.SEARCH_PATH, fault(), times=2)  # type: ignore[operator]
    found = google.source.discover(google.query(20), google.ctx())
    assert len(found) == 20 and len(google.state.search_calls) == 3


def test_429_until_the_attempts_run_out_is_a_failure_that_keeps_the_earlier_pages(google: GoogleRig) -> None:
    state = google.state
    original = state.search
    served = {"n": 0}

    def second_page_limited(request):  # type: ignore[no-untyped-def]
        served["n"] += 1
        return original(request) if served["n"] == 1 else google_sim.rate_limited()

    google.sim.route("POST", google_sim.SEARCH_PATH, second_page_limited)
    found = google.source.discover(google.query(45), google.ctx(wanted=45))
    assert len(found) == 20 and found.failure is not None
    assert found.failure.kind == ProviderErrorKind.rate_limited
    assert len(state.search_calls) == 1 + 3  # the second page: max_attempts


def test_a_body_that_is_not_json_is_malformed(google: GoogleRig) -> None:
    google.sim.fail(google_sim.SEARCH_PATH, SimResponse(200, b"<html>oops", {"Content-Type": "text/html"}))
    found = google.source.discover(google.query(20), google.ctx())
    assert found.failure is not None and found.failure.kind == ProviderErrorKind.malformed


def test_a_missing_field_mask_and_a_changed_paged_request_are_bad_requests_not_retried(google: GoogleRig) -> None:
    client = google.gate.http("google")
    with pytest.raises(ProviderError) as missing:
        client.request("POST", google_sim.SEARCH_PATH, json={"textQuery": "Cafe in Helsinki"})
    assert missing.value.kind == ProviderErrorKind.bad_request and "FieldMask" in missing.value.message
    mask = {"X-Goog-FieldMask": SEARCH_FIELD_MASK}
    first = client.request("POST", google_sim.SEARCH_PATH, json={"textQuery": "Cafe in Helsinki"}, headers=mask).json()
    with pytest.raises(ProviderError) as changed:
        client.request(
            "POST",
            google_sim.SEARCH_PATH,
            json={"textQuery": "Bakery in Helsinki", "pageToken": first["nextPageToken"]},
            headers=mask,
        )
    assert changed.value.kind == ProviderErrorKind.bad_request and "INVALID_ARGUMENT" in changed.value.message
    assert len(google.state.search_calls) == 3


def test_classify_reads_the_envelope() -> None:
    def answer(code: int, body: object, **headers: str) -> httpx.Response:
        return httpx.Response(code, json=body, headers=headers)

    assert classify(answer(200, {})).ok
    denied = classify(answer(403, {"error": {"code": 403, "status": "PERMISSION_DENIED", "message": "Billing off",
                                             "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                                          "reason": "BILLING_DISABLED"}]}}))
    assert denied.kind == ProviderErrorKind.auth and not denied.retry and "BILLING_DISABLED" in denied.message
    limited = classify(answer(429, {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "per minute",
                                              "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                                           "retryDelay": "7s"}]}}))
    assert limited.retry and limited.kind == ProviderErrorKind.rate_limited and limited.retry_after == 7.0
    daily = classify(answer(429, {"error": {"status": "RESOURCE_EXHAUSTED", "message": "Quota exceeded per day"}}))
    assert daily.kind == ProviderErrorKind.quota_exhausted and not daily.retry
    assert classify(answer(503, {"error": {"status": "UNAVAILABLE"}})).retry
    assert classify(httpx.Response(502, text="<html>bad gateway</html>")).retry
    assert classify(answer(400, {"error": {"status": "INVALID_ARGUMENT"}})).kind == ProviderErrorKind.bad_request


def test_the_same_owner_next_campaign_reuses_the_pages_within_the_content_days(google: GoogleRig) -> None:
    first = google.source.discover(google.query(45), google.ctx(wanted=45))
    again = google.source.discover(google.query(45), google.ctx(wanted=45))
    assert len(google.state.search_calls) == 3
    assert [b.source_id for b in again] == [b.source_id for b in first]
    assert [b.fetched_at for b in again] == [b.fetched_at for b in first]  # the original fetch time, for the terms
    rows = ledger_rows(google)
    assert [r["status"] for r in rows] == ["ok"] * 3 + ["reused"] * 3
    never = GooglePlacesSource(google.settings.model_copy(update={"google_content_days": 1}))
    assert never.reuse_days == 1.0


def test_place_details_by_id(google: GoogleRig) -> None:
    answer, fetched_at = google.source.details(google.ctx(), "ChIJsim0003")
    assert answer["id"] == "ChIJsim0003" and answer["websiteUri"] and fetched_at
    assert google.state.details_calls[0].headers["x-goog-fieldmask"] == google_places.DETAILS_FIELD_MASK
    with pytest.raises(ProviderError) as gone:
        google.source.details(google.ctx(), "ChIJnothere")
    assert gone.value.kind == ProviderErrorKind.bad_request and "NOT_FOUND" in gone.value.message


def test_a_large_area_is_biased_within_50_km(google: GoogleRig) -> None:
    wide = Area(latitude=60.17, longitude=24.94, radius_m=80_000.0, label="Uusimaa", country="FI")
    google.source.discover(google.query(20, area=wide), google.ctx())
    assert google.state.search_calls[0].json()["locationBias"]["circle"]["radius"] == 50_000.0
