"""What the pages compute on the server (web/views.py, pages.py), and sign-in over plain HTTP: fast, no browser."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from sqlalchemy import select

from prospectpro.services.users import create_session, create_user, list_users
from prospectpro.store.schema import job_candidates
from prospectpro.web import views
from prospectpro.web.pages import error_field, plain_words
from tests.api.conftest import LiveServer

AREA = {"latitude": 60.17, "longitude": 24.94, "radius_m": 1000, "label": "Kluuvi"}


def lead(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {"latitude": 60.171, "longitude": 24.941, "sources": ["osm:node/1"], "field_sources": {}}
    return {**base, **fields}


@pytest.mark.parametrize(
    ("category", "label"),
    [
        ("amenity=cafe", "Cafe"),
        ("shop=kiosk", "Kiosk"),
        ("coffee_shop", "Cafe"),
        ("craft=winery", "Winery"),
        (None, ""),
    ],
)
def test_a_readable_category(category: str | None, label: str) -> None:
    assert views.category_label(category) == label


def test_only_osm_and_overture_positions_are_mapped() -> None:
    assert views.mappable(lead())
    assert views.mappable(lead(sources=["overture:08f1"]))
    google = {"latitude": {"source": "google:ChIJ1", "fetched_at": None}}
    assert not views.mappable(lead(sources=["osm:node/1", "google:ChIJ1"], field_sources=google))
    assert not views.mappable(lead(sources=["google:ChIJ1"]))
    assert not views.mappable(lead(latitude=None))
    osm = {"latitude": {"source": "osm:node/1", "fetched_at": None}}
    assert views.mappable(lead(sources=["google:ChIJ1", "osm:node/1"], field_sources=osm))


def test_the_map_draws_markers_and_the_area_and_counts_the_rest() -> None:
    rows = views.lead_rows(
        [
            lead(confidence_score=90),
            lead(confidence_score=80, latitude=60.175),
            lead(confidence_score=70, sources=["google:ChIJ1"]),
            lead(confidence_score=60, latitude=None, longitude=None),
        ]
    )
    view = views.map_view(AREA, rows)
    assert view is not None
    assert len(view["markers"]) == 2 and view["google_only"] == 1 and view["no_position"] == 1
    assert len(view["outline"].split()) == views.CIRCLE_POINTS
    for marker in view["markers"]:
        assert 0 <= marker["x"] <= views.MAP_WIDTH and 0 <= marker["y"] <= views.MAP_HEIGHT
    assert view["tiles"] == [] and view["attribution"] == ""
    # No lead to show: the area alone, all of it in view.
    alone = views.map_view(AREA, [])
    assert alone is not None and alone["markers"] == [] and alone["area_in_view"]
    assert views.map_view(None, []) is None


def test_tiles_only_from_a_configured_server() -> None:
    rows = views.lead_rows([lead(confidence_score=90)])
    view = views.map_view(
        AREA, rows, tiles_url="https://tiles.example/{z}/{x}/{y}.png", tiles_attribution="© OpenStreetMap contributors"
    )
    assert view is not None and view["tiles"] and view["attribution"] == "© OpenStreetMap contributors"
    assert all(t["url"].startswith(f"https://tiles.example/{view['zoom']}/") for t in view["tiles"])
    assert views.map_view(AREA, rows, tiles_url="javascript:alert(1)/{z}")["tiles"] == []  # type: ignore[index]
    assert views.tile_url_origin("https://tiles.example/{z}/{x}/{y}.png") == "https://tiles.example"


def test_the_funnel_is_the_metrics() -> None:
    metrics = {
        "businesses_found": 85,
        "qualified_leads": 39,
        "leads_enriched": 20,
        "leads": 18,
        "total_cost": "0.035",
        "cost_per_lead": "0.001944",
    }
    funnel = views.funnel(metrics, (6, 1))
    assert funnel is not None
    assert [(s["key"], s["count"]) for s in funnel["steps"]] == [
        ("found", 85),
        ("qualified", 39),
        ("enriched", 20),
        ("with_email", 6),
        ("verified", 1),
        ("delivered", 18),
    ]
    assert funnel["steps"][0]["pct"] == 100 and funnel["steps"][1]["pct"] == round(100 * 39 / 85, 1)
    assert funnel["total_cost"] == "$0.035" and funnel["cost_per_lead"] == "$0.001944"
    assert views.funnel({}, None) is None
    waiting = views.funnel({}, None, before_found=True)
    assert waiting is not None and all(s["count"] is None for s in waiting["steps"])


def test_money_is_never_rounded_away() -> None:
    assert views.exact_money("0.00175") == "$0.00175"
    assert views.exact_money("2.5") == "$2.50"
    assert views.exact_money("1234") == "$1,234.00"
    assert views.exact_money(None) == "$0.00" and views.exact_money("lots") == "$0.00"


def test_errors_in_plain_words_next_to_their_field() -> None:
    message = "unknown business type 'zzz'. Try e.g. cafe, restaurant; `prospectpro types` lists them all."
    assert plain_words(message) == "unknown business type 'zzz'. Try e.g. cafe, restaurant."
    assert error_field(message) == "business_type"
    assert error_field("unknown location 'Atlantis'") == "location"
    assert error_field("max results must be at most 10000") == "max_results"
    assert error_field("something else") is None


def test_sign_in_over_http(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(workers=0)
    user, key = create_user(server.db, "Aino")
    _, session = create_session(server.db)
    with server.client() as client:
        client.get("/")
        for wrong in ("ppk_nope", session):  # a session token is no API key
            answer = client.post("/sign-in", data={"api_key": wrong})
            assert answer.status_code == 401 and "not valid" in answer.text
        assert client.post("/sign-in", data={"api_key": ""}).status_code == 422
        # Another site must not sign this browser in (login CSRF).
        assert (
            client.post("/sign-in", data={"api_key": key}, headers={"Origin": "https://evil.example"}).status_code
            == 403
        )
        answer = client.post("/sign-in", data={"api_key": key})
        assert answer.status_code == 303
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith("pp_session=pps_") and "HttpOnly" in cookie and key not in cookie
        assert "Signed in as <strong>Aino</strong>" in client.get("/").text
        # The user's list keeps one row per key, not one per web sign-in.
        assert [u["name"] for u in list_users(server.db)] == ["Aino"]
        assert client.post("/sign-out", headers={"Origin": "https://evil.example"}).status_code == 403
        out = client.post("/sign-out")
        assert out.status_code == 303 and 'pp_session=""' in out.headers["set-cookie"]
        client.cookies.clear()
        assert "Signed in as" not in client.get("/").text


def test_the_tile_server_is_allowed_by_the_page_policy_only_when_set(make_server: Callable[..., LiveServer]) -> None:
    plain = make_server(workers=0)
    tiles = make_server(workers=0, map_tiles_url="https://tiles.example/{z}/{x}/{y}.png")
    with plain.client() as client:
        assert "tiles.example" not in client.get("/").headers["content-security-policy"]
    with tiles.client() as client:
        assert "img-src 'self' data: https://tiles.example;" in client.get("/").headers["content-security-policy"]


def test_a_running_jobs_map_shows_what_discovery_found(
    make_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROSPECTPRO_TEST_ENRICH_DELAY", "0.2")
    server = make_server(extra_enrichers=["tests.plugins:SlowEnricher"], enrich_concurrency=1)
    with server.client() as client:
        client.get("/")
        answer = client.post("/campaigns", data={"business_type": "cafe", "location": "Helsinki", "max_results": "20"})
        job_id = answer.headers["location"].rsplit("/", 1)[1]
        deadline = time.monotonic() + 20
        while not (job := client.get(f"/api/v1/jobs/{job_id}").json())["metrics"].get("businesses_found"):
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
        html = client.get(f"/jobs/{job_id}").text
        assert client.get(f"/api/v1/jobs/{job_id}").json()["status"] == "processing"  # the leads are not stored yet
        client.post(f"/api/v1/jobs/{job_id}/cancel")
    with server.db.read() as conn:
        found = conn.execute(
            select(job_candidates.c.business).where(
                job_candidates.c.job_id == job_id, job_candidates.c.duplicate_of.is_(None)
            )
        ).all()
    positioned = [b for (b,) in found if b.get("latitude") is not None]
    mapped = [
        b
        for b in positioned
        if str(((b.get("field_sources") or {}).get("latitude") or {}).get("source") or b["source"]).startswith(
            ("osm", "overture")
        )
    ]
    assert mapped and html.count('<g class="marker"') == len(mapped)
    assert 'id="map-area"' in html and 'id="funnel"' in html
