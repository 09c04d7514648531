"""robots.txt as RFC 9309 says (parsed by protego): our product token's group, 4xx allowed, 5xx nothing, cached."""

from __future__ import annotations

import pytest

from prospectpro.gate.errors import ProviderError, ProviderErrorKind
from prospectpro.providers.website import SiteContacts, find_contacts
from tests.sim.server import SimResponse, Simulator
from tests.sim.sites import SitesSim, call_context, html, install, redirect, site_settings


@pytest.fixture
def sites(sim: Simulator) -> SitesSim:
    return install(sim)


def find(sites: SitesSim, name: str, **settings: object) -> SiteContacts:
    found = find_contacts(sites.url(name), call_context(), site_settings(**settings))
    assert found is not None
    return found


def test_a_disallowed_contact_page_is_not_fetched(sites: SitesSim) -> None:
    found = find(sites, "parturi-sakset.fi")
    # Our group ("ProspectPro") disallows /contact; Googlebot's "Disallow: /" is not ours; "*" would allow all.
    assert sites.paths("parturi-sakset.fi") == ["/robots.txt", "/", "/about"]
    assert [e.address for e in found.emails] == ["info@parturi-sakset.fi"]
    assert "secret@parturi-sakset.fi" not in {e.address for e in found.emails}


def test_the_product_token_comes_from_the_user_agent_setting(sites: SitesSim) -> None:
    find(sites, "parturi-sakset.fi", user_agent="Googlebot/2.1 (+http://www.google.com/bot.html)")
    assert sites.paths("parturi-sakset.fi") == ["/robots.txt"]  # Googlebot's group disallows everything


def test_a_503_robots_txt_means_nothing_on_the_site_is_fetched(sites: SitesSim) -> None:
    with pytest.raises(ProviderError) as failure:
        find(sites, "hammas-klinikka.fi")
    assert failure.value.kind == ProviderErrorKind.unavailable and "robots.txt" in str(failure.value)
    assert sites.paths("hammas-klinikka.fi") == ["/robots.txt"]


def test_an_unreachable_robots_txt_means_nothing_is_fetched(sites: SitesSim) -> None:
    sites.add("katkos.fi", {"/": html("<p>info@katkos.fi</p>")}, robots=SimResponse(close_without_answer=True))
    with pytest.raises(ProviderError):
        find(sites, "katkos.fi")
    assert sites.paths("katkos.fi") == ["/robots.txt"]


@pytest.mark.parametrize("status", [401, 403, 404, 410])
def test_a_4xx_robots_txt_allows_everything(sites: SitesSim, status: int) -> None:
    sites.add(
        "avoin.fi",
        {"/": html('<a href="/contact">Contact</a>'), "/contact": html("<p>info@avoin.fi</p>")},
        robots=SimResponse(status, "no"),
    )
    assert [e.address for e in find(sites, "avoin.fi").emails] == ["info@avoin.fi"]
    assert sites.paths("avoin.fi") == ["/robots.txt", "/", "/contact"]


def test_a_disallowed_homepage_is_refused_and_recorded_as_such(sites: SitesSim) -> None:
    sites.add("yksityinen.fi", {"/": html("<p>info@yksityinen.fi</p>")}, robots="User-agent: *\nDisallow: /\n")
    found = find(sites, "yksityinen.fi")
    assert found.refused is not None and found.refused.startswith("robots.txt disallows")
    assert found.pages == () and found.emails == ()
    assert sites.paths("yksityinen.fi") == ["/robots.txt"]


def test_robots_txt_is_cached_per_origin(sites: SitesSim) -> None:
    find(sites, "parturi-sakset.fi")
    find(sites, "parturi-sakset.fi")
    assert sites.count("parturi-sakset.fi", "/robots.txt") == 1
    assert sites.count("parturi-sakset.fi", "/") == 2


def test_a_redirect_to_a_disallowed_path_is_not_followed(sites: SitesSim) -> None:
    sites.add(
        "ohjaus.fi",
        {"/": redirect("/private/home"), "/private/home": html("<p>x@ohjaus.fi</p>")},
        robots="User-agent: *\nDisallow: /private/\n",
    )
    assert find(sites, "ohjaus.fi").refused == f"robots.txt disallows {sites.url('ohjaus.fi', '/private/home')}"
    assert sites.paths("ohjaus.fi") == ["/robots.txt", "/"]


def test_robots_txt_redirects_are_followed(sites: SitesSim) -> None:
    sites.add(
        "siirretty.fi",
        {
            "/": html('<a href="/contact">Contact</a>'),
            "/contact": html("<p>info@siirretty.fi</p>"),
            "/new-robots.txt": "User-agent: *\nDisallow: /contact\n",
        },
        robots=redirect("/new-robots.txt", 301),
    )
    assert find(sites, "siirretty.fi").pages == (sites.url("siirretty.fi"),)
    assert sites.paths("siirretty.fi") == ["/robots.txt", "/new-robots.txt", "/"]


def test_crawl_delay_is_honoured(sites: SitesSim) -> None:
    sites.add(
        "hidas.fi",
        {"/": html('<a href="/contact">Contact</a>'), "/contact": html("<p>info@hidas.fi</p>")},
        robots="User-agent: *\nCrawl-delay: 0.3\n",
    )
    find(sites, "hidas.fi")
    times = [c.at for c in sites.calls("hidas.fi")]
    assert len(times) == 3 and times[2] - times[1] >= 0.27
