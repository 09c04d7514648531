"""SSRF, with allow_private_websites off: nothing non-public is connected to, and nothing is sent there.

The sites' network (tests/sim/sites.py) carries every connection the check lets
through to the local server and records it, so "nothing sent" is observable:
no connection recorded and no request seen for the refused address.
"""

from __future__ import annotations

import pytest

from prospectpro.providers.website import SiteContacts, find_contacts
from tests.sim.server import Simulator
from tests.sim.sites import PUBLIC_ADDRESS, SitesSim, call_context, html, install, redirect, site_settings


@pytest.fixture
def sites(sim: Simulator) -> SitesSim:
    return install(sim)


def strict(**changes: object) -> object:
    return site_settings(allow_private_websites=False, **changes)


def find(website: str, **changes: object) -> SiteContacts:
    found = find_contacts(website, call_context(), strict(**changes))  # type: ignore[arg-type]
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("website", "address"),
    [
        ("http://127.0.0.1/", "127.0.0.1"),
        ("http://10.0.0.1/", "10.0.0.1"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("http://[::1]/", "::1"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1"),
        ("http://2130706433/", "127.0.0.1"),  # decimal-encoded
        ("http://0x7f000001/", "127.0.0.1"),  # hex-encoded
        ("http://0177.0.0.1/", None),  # octal: httpx refuses the URL itself
        ("http://127.1/", "127.0.0.1"),
        ("https://100.64.0.1/", "100.64.0.1"),  # CGNAT
        ("http://[fd00::1]/", "fd00::1"),  # ULA
        ("http://0.0.0.0/", "0.0.0.0"),
        ("192.168.0.10", "192.168.0.10"),  # no scheme, as OSM often has it
    ],
)
def test_non_public_addresses_are_refused_and_nothing_is_sent(
    sites: SitesSim, website: str, address: str | None
) -> None:
    found = find(website)
    if address is None:
        assert found.refused == "not a web address"
    else:
        assert found.refused is not None and found.refused.startswith("ssrf:") and address in found.refused
    assert found.pages == () and found.emails == ()
    assert sites.connections == [] and sites.count() == 0


def test_a_hostname_resolving_to_a_private_address_is_refused(sites: SitesSim) -> None:
    found = find("http://private.example.fi/")
    assert found.refused is not None and "192.168.1.20" in found.refused
    assert sites.lookups == ["private.example.fi"] and sites.connections == [] and sites.count() == 0


def test_a_name_with_any_private_answer_is_refused(sites: SitesSim) -> None:
    sites.names["kaksi.fi"] = [PUBLIC_ADDRESS, "127.0.0.1"]
    assert find("http://kaksi.fi/").refused.startswith("ssrf:")  # type: ignore[union-attr]
    assert sites.connections == []


def test_a_public_page_redirecting_to_a_private_one_is_not_followed(sites: SitesSim) -> None:
    found = find(sites.url("hotelli-ranta.fi"))
    # The homepage is read; its contact link redirects to intranet.hotelli-ranta.fi (10.0.0.7): never connected.
    assert found.refused is None and [e.address for e in found.emails] == ["reception@hotelli-ranta.fi"]
    assert found.pages == ("http://hotelli-ranta.fi/",)
    assert sites.paths("hotelli-ranta.fi") == ["/robots.txt", "/", "/contact"]
    assert sites.count("intranet.hotelli-ranta.fi") == 0
    assert set(sites.connections) == {(PUBLIC_ADDRESS, 80)}
    assert "intranet.hotelli-ranta.fi" in sites.lookups  # resolved and checked, then refused


def test_a_homepage_redirecting_to_cloud_metadata_is_refused(sites: SitesSim) -> None:
    sites.add("metadata-ansa.fi", {"/": redirect("http://169.254.169.254/latest/meta-data/")}, public=True)
    found = find(sites.url("metadata-ansa.fi"))
    assert found.refused is not None and found.refused.startswith("ssrf:") and "169.254.169.254" in found.refused
    assert set(sites.connections) == {(PUBLIC_ADDRESS, 80)}
    assert [c.path for c in sites.calls()] == ["/robots.txt", "/"]


def test_a_redirect_to_another_scheme_is_refused(sites: SitesSim) -> None:
    sites.add("tiedosto.fi", {"/": redirect("file:///etc/passwd")}, public=True)
    found = find(sites.url("tiedosto.fi"))
    assert found.refused is not None and "http or https" in found.refused


def test_only_ports_80_and_443(sites: SitesSim) -> None:
    sites.add("portti.fi", {"/": html("<p>info@portti.fi</p>")}, public=True)
    found = find("http://portti.fi:8080/")
    assert found.refused is not None and "port 8080" in found.refused
    assert sites.connections == [] and sites.count() == 0
    assert [e.address for e in find("http://portti.fi/").emails] == ["info@portti.fi"]


def test_the_connection_goes_to_the_checked_address_only(sites: SitesSim) -> None:
    """DNS rebinding: the name is resolved once per connection and the socket opened to that answer."""
    sites.add("vaihtuva.fi", {"/": html("<p>info@vaihtuva.fi</p>")}, public=True)
    find(sites.url("vaihtuva.fi"))
    assert set(sites.connections) == {(PUBLIC_ADDRESS, 80)}
    assert sites.lookups.count("vaihtuva.fi") == len(sites.connections)


def test_with_the_allow_setting_on_loopback_sites_are_fetched(sites: SitesSim) -> None:
    found = find_contacts(sites.url("cafe-engel.fi"), call_context(), site_settings(allow_private_websites=True))
    assert found is not None and found.refused is None and found.emails
    refused = find_contacts(sites.url("cafe-engel.fi"), call_context(), strict())  # type: ignore[arg-type]
    assert refused is not None and refused.refused is not None and refused.refused.startswith("ssrf:")
