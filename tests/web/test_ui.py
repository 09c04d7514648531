"""The pages as a lead-tool user sees them, in a real Chromium at 1280×900 and 360×740 (issue 16):
nothing scrolls sideways, the form's options and inline errors, the leads table's filters, sorting
and pages, the map and the funnel, signing in with an API key, and the 404 page.

One server and one set of campaigns for the module (the browser tests' CI time is bounded); each
test opens its own browser context. Screenshots go to tests/web/artifacts/ (gitignored)."""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select, update

from prospectpro.domain.campaign import CampaignRequest
from prospectpro.services.submissions import submit_campaign
from prospectpro.services.users import create_user
from prospectpro.store.schema import leads as leads_table
from tests.api.conftest import LiveServer, start_server

ARTIFACTS = Path(__file__).parent / "artifacts"
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 360, "height": 740}}
MANY = 1000
LONG_EMAIL = "reservations.and.catering.enquiries@a-rather-long-cafe-domain-name.example.fi"


def wait_done(client: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while (job := client.get(f"/api/v1/jobs/{job_id}").json())["status"] not in ("completed", "failed", "cancelled"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    assert job["status"] == "completed", job
    return job


def leads_of(server: LiveServer, campaign_id: str) -> list[dict[str, Any]]:
    with server.db.read() as conn:
        return [
            dict(r)
            for r in conn.execute(select(leads_table).where(leads_table.c.campaign_id == campaign_id)).mappings()
        ]


def folded(text: str) -> str:
    """As a browser's localeCompare orders names: accents and case aside ("Café" beside "Cafe")."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).lower()


def mappable(lead: dict[str, Any]) -> bool:
    """The rule the map follows, written out again: a position from OpenStreetMap or Overture."""
    if lead["latitude"] is None:
        return False
    source = ((lead["field_sources"] or {}).get("latitude") or {}).get("source")
    refs = [source] if source else list(lead["sources"] or [])
    return any(str(r).startswith(("osm:", "overture:")) for r in refs)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A server, a user with an API key, a finished campaign of 20 cafes (one found only by Google,
    some e-mails), one campaign made through the CLI's service, and one with 1,000 leads."""
    server = start_server(tmp_path_factory.mktemp("ui"), submissions_per_minute=1000, sessions_per_minute=1000)
    user, key = create_user(server.db, "Maija")
    with server.client(key) as api:
        answer = api.post(
            "/api/v1/campaigns", json={"business_type": "cafe", "location": "Helsinki", "max_results": 20}
        )
        assert answer.status_code in (200, 201, 202), answer.text
        job = wait_done(api, answer.json()["job_id"])
        cli = submit_campaign(
            server.db,
            server.settings,
            user.user_id,
            CampaignRequest(business_type="bakery", location="Helsinki", max_results=1),
        )
        many_job = wait_done(api, cli.job.id)
    campaign_id = job["campaign_id"]
    rows = sorted(leads_of(server, campaign_id), key=lambda r: -r["confidence_score"])
    with server.db.write() as conn:
        # One business only Google found: listed, not mapped. Two with e-mails, one verified.
        google = rows[1]
        conn.execute(
            update(leads_table)
            .where(leads_table.c.id == google["id"])
            .values(
                sources=["google:ChIJtest"],
                field_sources={"latitude": {"source": "google:ChIJtest", "fetched_at": None}},
            )
        )
        conn.execute(
            update(leads_table).where(leads_table.c.id == rows[0]["id"]).values(email=LONG_EMAIL, email_status="valid")
        )
        conn.execute(
            update(leads_table)
            .where(leads_table.c.id == rows[2]["id"])
            .values(email="hei@kahvila.example", email_status="unknown")
        )
        # The CLI's campaign gets 1,000 leads (copies of one, each its own business).
        template = {k: v for k, v in rows[3].items() if k not in ("id",)}
        conn.execute(
            leads_table.insert(),
            [
                {
                    **template,
                    "campaign_id": many_job["campaign_id"],
                    "dedup_key": f"many-{i}",
                    "business_name": f"Kahvila {i:04d}",
                    "confidence_score": i % 101,
                    "email": f"info{i}@example.fi" if i % 4 == 0 else None,
                }
                for i in range(MANY - 1)  # with the campaign's own: MANY, all of them shown
            ],
        )
    yield {
        "server": server,
        "key": key,
        "job": job,
        "campaign_id": campaign_id,
        "leads": leads_of(server, campaign_id),
        "cli_job": many_job,
        "many": leads_of(server, many_job["campaign_id"]),
    }
    server.stop()


@pytest.fixture(params=list(VIEWPORTS))
def viewport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def new_page(chromium: Browser, size: str = "desktop") -> Page:
    context = chromium.new_context(viewport=VIEWPORTS[size])
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.__dict__["_js_errors"] = errors
    return page


def close(page: Page) -> None:
    errors = page.__dict__.get("_js_errors", [])
    page.context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def sign_in(page: Page, server: LiveServer, key: str) -> None:
    page.goto(server.url + "/")
    page.get_by_label("API key", exact=True).fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(server.url + "/")
    expect(page.locator("#signed-in-as")).to_contain_text("Maija")


def fits(page: Page, name: str, size: str) -> None:
    """Nothing scrolls sideways; and a screenshot for the next person to look at."""
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{size}.png"), full_page=True)
    assert width[0] <= width[1], f"{name} at {size}: the page is {width[0]} px wide in a {width[1]} px window"


def test_no_page_scrolls_sideways(chromium: Browser, world: dict[str, Any], viewport: str) -> None:
    server = world["server"]
    page = new_page(chromium, viewport)
    try:
        page.goto(server.url + "/")
        fits(page, "home-anonymous", viewport)
        sign_in(page, server, world["key"])
        expect(page.locator("table.history tbody tr").nth(1)).to_be_visible()  # the API's and the CLI's, at least
        fits(page, "home-signed-in", viewport)
        page.goto(f"{server.url}/jobs/{world['job']['id']}")
        expect(page.locator("#funnel")).to_be_visible()
        fits(page, "job", viewport)
        page.goto(f"{server.url}/campaigns/{world['campaign_id']}")
        expect(page.locator("#leads tbody tr").first).to_be_visible()
        page.locator("#leads tbody tr").first.locator("summary").click()  # an open breakdown fits too
        fits(page, "campaign", viewport)
        page.goto(f"{server.url}/campaigns/{world['cli_job']['campaign_id']}")
        fits(page, "campaign-1000", viewport)
        page.goto(server.url + "/no/such/page")
        fits(page, "not-found", viewport)
        page.goto(server.url + "/campaigns")  # GET of a POST-only page
        page.goto(server.url + "/")
        page.get_by_label("Location").fill("Atlantis")
        page.get_by_label("Business type").fill("cafe")
        page.get_by_role("button", name="Start campaign").click()
        expect(page.locator("#location-error")).to_be_visible()
        fits(page, "form-error", viewport)
    finally:
        close(page)


def test_the_form_options_and_inline_errors(chromium: Browser, world: dict[str, Any]) -> None:
    server = world["server"]
    page = new_page(chromium)
    try:
        page.goto(server.url + "/")
        tiers = page.locator("#tier option").evaluate_all("options => options.map(o => o.value)")
        assert tiers == ["base", "professional", "enterprise"]
        expect(page.locator("#tier")).to_have_value("base")
        expect(page.get_by_label("Include businesses you already have")).not_to_be_checked()
        expect(page.locator("#location-hint")).to_contain_text("60.1699,24.9384,1500")
        expect(page.locator("#location-hint .example").first).to_have_text("Helsinki")

        # An unknown type: the message next to the field, in plain words (no command line).
        page.get_by_label("Business type").fill("zzzzqqq")
        page.get_by_label("Location").fill("Helsinki")
        page.get_by_role("button", name="Start campaign").click()
        error = page.locator("#business_type-error")
        expect(error).to_contain_text("unknown business type")
        assert "`" not in error.inner_text() and "prospectpro" not in error.inner_text()
        expect(page.get_by_label("Business type")).to_have_attribute("aria-invalid", "true")
        expect(page.locator("#form-error")).to_have_count(0)

        # The options reach the campaign.
        page.get_by_label("Business type").fill("cafe")
        page.get_by_label("Max results").fill("2")
        page.get_by_label("Include businesses you already have").check()
        page.get_by_role("button", name="Start campaign").click()
        page.wait_for_url("**/jobs/*")
        job = page.request.get(f"{server.url}/api/v1/jobs/{page.url.rsplit('/', 1)[1]}").json()
        assert job["config"]["include_delivered"] is True
        assert job["config"].get("tier", "base") == "base"
    finally:
        close(page)


def test_the_leads_table_filters_sorts_and_pages(chromium: Browser, world: dict[str, Any]) -> None:
    server = world["server"]
    leads = world["leads"]
    page = new_page(chromium)
    try:
        sign_in(page, server, world["key"])
        page.goto(f"{server.url}/campaigns/{world['campaign_id']}")
        rows = page.locator("#leads tbody tr")
        expect(rows).to_have_count(len(leads))
        # A readable category, not the raw tag; the e-mail unbroken, with its status as a badge.
        assert "amenity=cafe" not in page.locator("#leads tbody").inner_text()
        expect(rows.first.locator(".category")).to_have_text("Cafe")
        email = page.locator(f'a[href="mailto:{LONG_EMAIL}"]')
        assert email.evaluate("a => getComputedStyle(a).whiteSpace") == "nowrap"
        expect(page.locator(f'tr[data-email="{LONG_EMAIL}"] .badge')).to_have_text("verified")
        # The breakdown opens from the bar.
        breakdown = rows.first.locator(".breakdown")
        expect(breakdown).to_be_hidden()
        rows.first.locator("summary").click()
        expect(breakdown).to_be_visible()
        expect(breakdown).to_contain_text("/25")

        def sort_by(column: str) -> Any:
            return page.locator(f"th[data-sort={column}] button")

        def shown(attribute: str) -> list[str]:
            return rows.evaluate_all(f"rows => rows.map(r => r.getAttribute('data-{attribute}'))")

        page.get_by_label("Has e-mail").check()
        expect(rows).to_have_count(sum(1 for r in leads if r["email"]))
        page.get_by_label("Verified e-mail").check()
        expect(rows).to_have_count(1)
        assert shown("email") == [LONG_EMAIL]
        page.get_by_label("Has e-mail").uncheck()
        page.get_by_label("Verified e-mail").uncheck()
        page.get_by_label("Has phone").check()
        expect(rows).to_have_count(sum(1 for r in leads if r["phone"]))
        page.get_by_label("Has phone").uncheck()
        page.get_by_label("Has website").check()
        expect(rows).to_have_count(sum(1 for r in leads if r["website"]))
        page.get_by_label("Has website").uncheck()
        cut = sorted(r["confidence_score"] for r in leads)[len(leads) // 2]
        page.get_by_label("Minimum score").fill(str(cut))
        expect(rows).to_have_count(sum(1 for r in leads if r["confidence_score"] >= cut))
        page.get_by_label("Minimum score").fill("")
        expect(rows).to_have_count(len(leads))

        # Sorting on any column; empty cells last.
        sort_by("name").click()
        expect(page.locator("th[data-sort=name]")).to_have_attribute("aria-sort", "ascending")
        names = shown("name")
        assert names == sorted(names, key=lambda n: (n == "", folded(n)))
        sort_by("name").click()
        expect(page.locator("th[data-sort=name]")).to_have_attribute("aria-sort", "descending")
        assert [folded(n) for n in shown("name")] == sorted((folded(n) for n in names), reverse=True)
        sort_by("email").click()
        emails = shown("email")
        with_email = sorted((r["email"] for r in leads if r["email"]), key=folded)
        assert emails == with_email + [""] * (len(leads) - len(with_email))
        sort_by("score").click()
        scores = [int(s) for s in shown("score")]
        assert scores == sorted(scores, reverse=True)

        # 1,000 leads: one page of 50 in the document, filters and sorting over all of them, quickly.
        page.goto(f"{server.url}/campaigns/{world['cli_job']['campaign_id']}")
        expect(rows).to_have_count(50)
        many = world["many"]
        assert len(many) == MANY
        expect(page.locator("#page-info")).to_have_text(f"1–50 of {MANY}")
        started = time.monotonic()
        page.get_by_label("Has e-mail").check()
        with_email = sum(1 for r in many if r["email"])
        expect(page.locator("#lead-count")).to_contain_text(f"{with_email} of {MANY} leads match")
        sort_by("name").click()
        first = sorted((r["business_name"] for r in many if r["email"]), key=folded)[0]
        expect(rows.first).to_have_attribute("data-name", first)
        page.get_by_role("button", name="Next →").click()
        expect(page.locator("#page-info")).to_have_text(f"51–100 of {with_email}")
        assert time.monotonic() - started < 5
    finally:
        close(page)


def test_the_map_and_the_funnel(chromium: Browser, world: dict[str, Any]) -> None:
    server = world["server"]
    leads = world["leads"]
    metrics = world["job"]["metrics"]
    page = new_page(chromium)
    try:
        sign_in(page, server, world["key"])
        for path in (f"/campaigns/{world['campaign_id']}", f"/jobs/{world['job']['id']}"):
            page.goto(server.url + path)
            markers = page.locator("#map-svg .marker")
            expected = sum(1 for r in leads if mappable(r))
            assert 0 < expected < len(leads)
            expect(markers).to_have_count(expected)
            expect(page.locator("#map-count")).to_have_text(str(expected))
            expect(page.locator("#map-google-only")).to_contain_text("1 whose position comes only from Google")
            assert page.locator("#map-area").get_attribute("points").count(",") >= 60  # the area's outline
            assert page.locator("#map-svg image").count() == 0  # no tile server configured: no tiles
            # Every marker inside the drawing.
            for x, y in markers.evaluate_all(
                "ms => ms.map(m => m.getAttribute('transform').match(/[-0-9.]+/g).map(Number))"
            ):
                assert 0 <= x <= 800 and 0 <= y <= 450
            markers.first.click()
            popup = page.locator("#map-popup")
            expect(popup).to_be_visible()
            expect(popup.locator(".map-popup-name")).to_have_text(markers.first.get_attribute("data-name") or "—")
            expect(popup.locator(".map-popup-score")).to_contain_text(markers.first.get_attribute("data-score") or "")

            # The funnel's numbers are the job's metrics (the e-mail steps count the stored leads).
            counts = dict(
                page.locator("#funnel .funnel-step").evaluate_all(
                    "steps => steps.map(s => [s.dataset.step, s.dataset.count])"
                )
            )
            assert counts == {
                "found": str(metrics["businesses_found"]),
                "qualified": str(metrics["qualified_leads"]),
                "enriched": str(metrics["leads_enriched"]),
                "with_email": str(sum(1 for r in leads if r["email"])),
                "verified": "1",
                "delivered": str(metrics["leads"]),
            }
            expect(page.locator("#funnel-total-cost")).to_have_text("$" + f"{float(metrics['total_cost']):.2f}")
    finally:
        close(page)


def test_sign_in_one_history_and_sign_out(chromium: Browser, world: dict[str, Any]) -> None:
    server = world["server"]
    page = new_page(chromium)
    try:
        page.goto(server.url + "/")
        expect(page.locator("#history-title")).to_be_visible()
        assert page.locator("table.history tbody tr").count() == 0  # anonymous: a new session, nothing yet

        page.get_by_label("API key", exact=True).fill("ppk_not-a-real-key")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#sign-in-error")).to_contain_text("not valid")

        sign_in(page, server, world["key"])
        cookie = next(c for c in page.context.cookies() if c["name"] == "pp_session")
        assert cookie["httpOnly"] and cookie["value"] != world["key"]  # a session of the user, not the key
        history = page.locator("table.history tbody tr")
        before = history.count()
        assert before >= 2  # the API's campaign and the CLI's
        ids = history.evaluate_all("rows => rows.map(r => r.dataset.jobId)")
        assert world["job"]["id"] in ids and world["cli_job"]["id"] in ids

        # A campaign started on the web while signed in joins the same list, and the API sees it as the key's.
        page.get_by_label("Business type").fill("cafe")
        page.get_by_label("Location").fill("Helsinki")
        page.get_by_label("Max results").fill("1")
        page.get_by_role("button", name="Start campaign").click()
        page.wait_for_url("**/jobs/*")
        web_job = page.url.rsplit("/", 1)[1]
        with server.client(world["key"]) as api:
            assert api.get(f"/api/v1/jobs/{web_job}").status_code == 200
        page.goto(server.url + "/")
        expect(history).to_have_count(before + 1)

        # A form post by the signed-in cookie from another origin is refused, as for anyone.
        answer = page.request.post(
            server.url + "/campaigns",
            form={"business_type": "cafe", "location": "Helsinki"},
            headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
            max_redirects=0,
        )
        assert answer.status == 403

        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(server.url + "/")
        expect(page.locator("#signed-in-as")).to_have_count(0)
        assert page.locator("table.history tbody tr").count() == 0
        # The old session token no longer works.
        with server.client(cookie["value"]) as old:
            assert old.get("/api/v1/jobs").status_code == 401
        with server.client(world["key"]) as api:  # the key itself still does
            assert api.get("/api/v1/jobs").status_code == 200
    finally:
        close(page)


def test_the_not_found_page_and_the_favicon(chromium: Browser, world: dict[str, Any]) -> None:
    server = world["server"]
    page = new_page(chromium)
    try:
        answer = page.goto(server.url + "/no/such/page")
        assert answer is not None and answer.status == 404
        assert answer.headers["content-type"].startswith("text/html")
        expect(page.locator("h1")).to_contain_text("couldn’t find that page")
        icon = page.request.get(server.url + "/favicon.ico")
        assert icon.ok and icon.headers["content-type"].startswith("image/svg+xml")
    finally:
        close(page)
    with httpx.Client(base_url=server.url) as client:
        api = client.get("/no/such/page", headers={"Accept": "application/json"})
        assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"
        assert (
            client.get("/api/v1/nope", headers={"Accept": "text/html"})
            .headers["content-type"]
            .startswith("application/json")
        )
        docs = client.get("/openapi.json").json()
        assert docs["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
        assert {"apiKey": []} in docs["paths"]["/api/v1/campaigns"]["post"]["security"]
