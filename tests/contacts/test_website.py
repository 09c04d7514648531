"""The website contact finder against the simulator's sites: what it fetches, finds, bounds and records."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from prospectpro.gate.core import Gate
from prospectpro.gate.errors import ProviderError, ProviderErrorKind
from prospectpro.providers.website import FoundEmail, SiteContacts, crawl, find_contacts, site_url
from prospectpro.store.db import Database
from prospectpro.store.schema import api_calls
from tests.gate.fakes import Clock
from tests.sim.server import SimResponse, Simulator
from tests.sim.sites import BIG_PAGE_BYTES, SitesSim, call_context, html, install, site_settings


@pytest.fixture
def sites(sim: Simulator) -> SitesSim:
    return install(sim)


def find(sites: SitesSim, name: str, **settings: object) -> SiteContacts:
    found = find_contacts(sites.url(name), call_context(), site_settings(**settings))
    assert found is not None
    return found


def test_homepage_and_contact_pages_with_their_sources(sites: SitesSim) -> None:
    found = find(sites, "cafe-engel.fi")
    base = sites.url("cafe-engel.fi")
    assert found.refused is None
    assert found.pages == (base, base + "yhteystiedot", base + "meista")  # contact first; the menu is not fetched
    assert sites.paths("cafe-engel.fi") == ["/robots.txt", "/", "/yhteystiedot", "/meista"]
    assert found.emails == (
        FoundEmail("info@cafe-engel.fi", base + "yhteystiedot", "role", True, "mailto"),
        FoundEmail("anna.virtanen@cafe-engel.fi", base + "yhteystiedot", "personal", True, "text"),
        FoundEmail("engelcafe@gmail.com", base + "meista", "personal", False, "text"),
    )
    assert found.best() == found.best("role") == found.emails[0]
    assert found.best("personal") == found.emails[1]
    assert found.phones == (("+3589652776", base + "yhteystiedot"),)
    assert found.socials == (
        ("https://www.facebook.com/cafeengel", base),
        ("https://www.instagram.com/cafe.engel", base),
    )
    assert SiteContacts.from_dict(found.to_dict()) == found


def test_our_user_agent_is_sent(sites: SitesSim) -> None:
    find(sites, "cafe-engel.fi", contact_email="ops@prospectpro.test")
    agents = {c.headers.get("user-agent") for c in sites.calls("cafe-engel.fi")}
    assert len(agents) == 1 and agents.pop().startswith("ProspectPro/")  # type: ignore[union-attr]


def test_obfuscated_addresses(sites: SitesSim) -> None:
    found = {e.address: e.how for e in find(sites, "bistro-nord.fi").emails}
    assert found == {
        "info@bistro-nord.fi": "obfuscated",
        "myynti@bistro-nord.fi": "obfuscated",
        "sales@bistro-nord.fi": "obfuscated",
        "tilaus@bistro-nord.fi": "obfuscated",
        "varaus@bistro-nord.fi": "text",  # HTML entities: the parser decodes them
    }


def test_cloudflare_protected_addresses(sites: SitesSim) -> None:
    found = find(sites, "salon-aurora.fi")
    assert [(e.address, e.kind, e.how) for e in found.emails] == [
        ("ajanvaraus@salon-aurora.fi", "role", "cloudflare"),
        ("maria@salon-aurora.fi", "personal", "cloudflare"),
    ]


def test_false_positive_bait_leaves_the_one_real_address(sites: SitesSim) -> None:
    assert [e.address for e in find(sites, "kirjakauppa-lehto.fi").emails] == ["hello@kirjakauppa-lehto.fi"]


def test_page_cap_follows_the_best_links_first(sites: SitesSim) -> None:
    found = find(sites, "tekniikka-oy.fi", website_max_pages=3)
    base = sites.url("tekniikka-oy.fi")
    assert found.pages == (base, base + "impressum", base + "contact")  # contact-ish first, in page order
    assert sites.count("tekniikka-oy.fi") == 4  # robots.txt + 3 pages; never the PDF, about, team, privacy
    assert [e.address for e in found.emails] == ["office@tekniikka-oy.fi", "matti.meikalainen@tekniikka-oy.fi"]
    one = find(sites, "tekniikka-oy.fi", website_max_pages=1)
    assert one.pages == (base,) and one.emails == ()


def test_redirects_are_followed_by_hand(sites: SitesSim) -> None:
    found = find(sites, "kukka-kauppa.fi")
    base = sites.url("kukka-kauppa.fi")
    assert found.pages == (base + "fi/", base + "fi/yhteystiedot")
    assert [(e.address, e.url) for e in found.emails] == [("tilaukset@kukka-kauppa.fi", base + "fi/yhteystiedot")]
    assert sites.paths("kukka-kauppa.fi") == ["/robots.txt", "/", "/fi/", "/fi/kontakt", "/fi/yhteystiedot"]


def test_a_redirect_loop_stops_at_the_cap(sites: SitesSim) -> None:
    found = find(sites, "kierre.fi", website_max_redirects=3)
    assert found.refused == "more than 3 redirects" and found.pages == ()
    assert sites.count("kierre.fi") == 1 + 4  # robots.txt, then the first request and three redirects


def test_a_slow_page_is_bounded_by_the_page_timeout(sites: SitesSim) -> None:
    started = time.monotonic()
    found = find(sites, "hidas-kahvila.fi", website_page_timeout=0.5)
    assert time.monotonic() - started < 2.0  # the contact page answers after 3 s
    assert [e.address for e in found.emails] == ["hei@hidas-kahvila.fi"]  # the homepage's address is kept
    assert found.pages == (sites.url("hidas-kahvila.fi"),)


def test_a_slow_site_is_bounded_by_the_site_timeout(sites: SitesSim) -> None:
    sites.add("hitaampi.fi", {"/": SimResponse(200, html("<p>x@hitaampi.fi</p>"), delay=3.0)})
    started = time.monotonic()
    with pytest.raises(ProviderError) as failure:
        find(sites, "hitaampi.fi", website_page_timeout=10.0, website_site_timeout=0.5)
    assert time.monotonic() - started < 2.0
    assert failure.value.kind == ProviderErrorKind.timeout and failure.value.provider == "website"


def test_an_oversized_page_is_read_up_to_the_cap(sites: SitesSim) -> None:
    started = time.monotonic()
    found = find(sites, "iso-sivu.fi", website_max_bytes=64 * 1024)
    assert time.monotonic() - started < 3.0
    assert [e.address for e in found.emails] == ["first@iso-sivu.fi"]  # "last@" is past the cap: never read
    assert BIG_PAGE_BYTES > 40 * 64 * 1024  # the page is far larger than what was read


def test_ranking_on_domain_then_webmail_then_others_and_mailto_above_text(sites: SitesSim) -> None:
    sites.add(
        "jarjestys.fi",
        {
            "/": html(
                '<p>Site by design@agency-x.fi</p><a href="mailto:engel@gmail.com">gmail</a>'
                '<p>myynti@jarjestys.fi</p><a href="mailto:info@jarjestys.fi">info</a><a href="/contact">Contact</a>'
            ),
            "/contact": html('<a href="mailto:myynti@jarjestys.fi">myynti</a>'),
        },
    )
    found = find(sites, "jarjestys.fi")
    base = sites.url("jarjestys.fi")
    assert [(e.address, e.how, e.url) for e in found.emails] == [
        ("info@jarjestys.fi", "mailto", base),
        ("myynti@jarjestys.fi", "mailto", base + "contact"),  # the mailto on the contact page beats the homepage text
        ("engel@gmail.com", "mailto", base),
        ("design@agency-x.fi", "text", base),
    ]


def test_a_homepage_that_fails_is_an_error_a_missing_one_an_answer(sites: SitesSim) -> None:
    sites.add("rikki.fi", {"/": SimResponse(502, "bad gateway")})
    sites.add("poissa.fi", {})
    sites.add("kuva.fi", {"/": SimResponse(200, b"\x89PNG", headers={"Content-Type": "image/png"})})
    with pytest.raises(ProviderError) as failure:
        find(sites, "rikki.fi")
    assert failure.value.kind == ProviderErrorKind.unavailable and "502" in str(failure.value)
    assert find(sites, "poissa.fi").refused == "the homepage answered HTTP 404"
    assert find(sites, "kuva.fi").refused == "the homepage is not HTML (image/png)"


def test_an_unreachable_site_is_an_error(sites: SitesSim) -> None:
    with pytest.raises(ProviderError) as failure:
        crawl("http://nowhere.fi/", site_settings(), sites.network())
    assert failure.value.kind == ProviderErrorKind.unavailable


def test_no_website_a_social_profile_and_not_a_web_address(sites: SitesSim) -> None:
    ctx, settings = call_context(), site_settings()
    assert find_contacts(None, ctx, settings) is None
    assert find_contacts("  ", ctx, settings) is None
    social = find_contacts("https://m.facebook.com/cafeengel/?ref=page", ctx, settings)
    assert social == SiteContacts(
        site="https://m.facebook.com/cafeengel/?ref=page",
        socials=(("https://www.facebook.com/cafeengel", "https://m.facebook.com/cafeengel/?ref=page"),),
        refused="social profile",
    )
    assert find_contacts("instagram.com/cafe.engel", ctx, settings).refused == "social profile"  # type: ignore[union-attr]
    platform = find_contacts("https://www.tripadvisor.fi/Restaurant-xyz", ctx, settings)
    assert platform is not None and platform.refused.startswith("not the business's own site")  # type: ignore[union-attr]
    for junk in ("mailto:info@cafe-engel.fi", "ftp://cafe-engel.fi/", "http://user:pw@cafe-engel.fi/"):
        assert find_contacts(junk, ctx, settings) == SiteContacts(site=junk, refused="not a web address")
    assert sites.lookups == [] and sites.connections == []


def test_site_url_normalises() -> None:
    assert site_url("Cafe-Engel.FI/fi/#top") == "http://cafe-engel.fi/fi/"
    assert site_url("//cafe-engel.fi") == "http://cafe-engel.fi/"
    assert site_url("https://cafe-engel.fi; https://other.fi") == "https://cafe-engel.fi/"
    assert site_url("http://2130706433/") == "http://127.0.0.1/"
    assert site_url("http://0x7f.1/x") == "http://127.0.0.1/x"
    assert site_url("javascript:alert(1)") is None


def test_one_request_at_a_time_per_host_with_the_delay(sites: SitesSim) -> None:
    """Two jobs crawling the same site at once: the host sees one request at a time, the pause between."""
    delay = 0.15
    settings = site_settings(website_host_delay=delay)
    results: list[SiteContacts | None] = []
    workers = [
        threading.Thread(
            target=lambda: results.append(find_contacts(sites.url("cafe-engel.fi"), call_context(), settings))
        )
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    assert len(results) == 2 and all(r is not None and r.refused is None for r in results)
    times = sorted(c.at for c in sites.calls("cafe-engel.fi"))
    assert len(times) == 1 + 3 * 2  # robots.txt once (cached per origin), three pages per job
    assert all(b - a >= delay * 0.9 for a, b in zip(times, times[1:]))


def test_other_hosts_are_not_held_up(sites: SitesSim) -> None:
    settings = site_settings(website_host_delay=0.3)
    started = time.monotonic()
    threads = [
        threading.Thread(target=find_contacts, args=(sites.url(name), call_context(), settings))
        for name in ("cafe-engel.fi", "bistro-nord.fi", "kukka-kauppa.fi", "tekniikka-oy.fi")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    # each site alone: 4-5 requests x 0.3 s; one after another it would be ~5 s
    assert time.monotonic() - started < 2.5


# -- the ledger -------------------------------------------------------------------------------


def test_a_site_fetch_is_one_ledger_entry_reused_by_the_next_campaign(db: Database, sites: SitesSim) -> None:
    clock = Clock()
    settings = site_settings(website_cache_days=30)
    gate = Gate(db, settings, [], clock=clock)
    first_ctx = call_context(gate)
    first = find_contacts(sites.url("cafe-engel.fi"), first_ctx, settings)
    fetched = sites.count("cafe-engel.fi")
    assert first is not None and first.emails and fetched == 4

    assert find_contacts(sites.url("cafe-engel.fi"), first_ctx, settings) == first  # the job again: its own row
    clock.now += timedelta(days=29)
    second = find_contacts(sites.url("cafe-engel.fi"), call_context(gate), settings)  # the next campaign
    assert second == first and sites.count("cafe-engel.fi") == fetched

    with db.read() as conn:
        rows = conn.execute(select(api_calls).order_by(api_calls.c.id)).all()
    assert [(r.provider, r.operation, r.status, r.cost) for r in rows] == [
        ("website", "site", "ok", 0),
        ("website", "site", "reused", 0),
    ]
    origin = sites.url("cafe-engel.fi").rstrip("/")
    assert rows[0].request == {"site": origin}
    assert SiteContacts.from_dict(rows[0].response) == first

    clock.now += timedelta(days=2)  # past the cache days: fetched again
    find_contacts(sites.url("cafe-engel.fi"), call_context(gate), settings)
    assert sites.count("cafe-engel.fi") > fetched


def test_a_failed_fetch_is_recorded_as_an_error_and_tried_again(db: Database, sites: SitesSim) -> None:
    sites.add("rikki.fi", {"/": SimResponse(503, "down")})
    settings = site_settings()
    gate = Gate(db, settings, [])
    ctx = call_context(gate)
    with pytest.raises(ProviderError):
        find_contacts(sites.url("rikki.fi"), ctx, settings)
    sites.sites["rikki.fi"].pages["/"] = html("<p>info@rikki.fi</p>")
    found = find_contacts(sites.url("rikki.fi"), call_context(gate), settings)
    assert found is not None and [e.address for e in found.emails] == ["info@rikki.fi"]
    with db.read() as conn:
        statuses = [r.status for r in conn.execute(select(api_calls).order_by(api_calls.c.id))]
    assert statuses == ["error", "ok"]
