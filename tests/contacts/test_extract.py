"""The extractor on each kind of page, as HTML strings; and the e-mail rules it relies on."""

from __future__ import annotations

import pytest

from prospectpro.domain.emails import (
    clean_email,
    email_kind,
    is_free_mail,
    is_junk_email,
    is_on_domain,
    registrable_domain,
)
from prospectpro.providers.extract import (
    Link,
    contact_links,
    decode_cfemail,
    deobfuscate,
    extract,
    page_kind,
    social_profile,
)
from tests.sim.sites import cf_encode, html

URL = "https://www.cafe-engel.fi/"


def emails(body: str, url: str = URL) -> dict[str, str]:
    return {e.address: e.how for e in extract(html(body), url).emails}


# -- mailto and text ---------------------------------------------------------------------------


def test_mailto_query_is_stripped_and_the_address_url_decoded() -> None:
    found = emails('<a href="MAILTO:Info%40Cafe-Engel.fi?subject=Hei&amp;body=x">write</a>')
    assert found == {"info@cafe-engel.fi": "mailto"}


def test_a_mailto_with_several_addresses_gives_each() -> None:
    found = emails('<a href="mailto:a@cafe-engel.fi,b@cafe-engel.fi;c@cafe-engel.fi">all</a>')
    assert set(found) == {"a@cafe-engel.fi", "b@cafe-engel.fi", "c@cafe-engel.fi"}


def test_a_broken_mailto_gives_nothing() -> None:
    assert emails('<a href="mailto:">x</a><a href="mailto:not-an-address">y</a>') == {}


def test_plain_addresses_in_text_and_the_link_wins_over_the_text() -> None:
    found = emails(
        '<p>Write to office@cafe-engel.fi.</p><a href="mailto:office@cafe-engel.fi">office@cafe-engel.fi</a>'
    )
    assert found == {"office@cafe-engel.fi": "mailto"}
    assert emails("<p>Mail: myynti@cafe-engel.fi, or call.</p>") == {"myynti@cafe-engel.fi": "text"}


def test_scripts_styles_and_attributes_are_not_text() -> None:
    body = (
        '<script>var x = "js@cafe-engel.fi";</script><style>/* css@cafe-engel.fi */</style>'
        '<noscript>ns@cafe-engel.fi</noscript><div data-x="attr@cafe-engel.fi">hi</div>'
    )
    assert emails(body) == {}


def test_an_address_split_by_inline_tags_is_still_found() -> None:
    assert "info@cafe-engel.fi" in emails("<p><b>info</b>@cafe-engel.fi</p>")


# -- obfuscation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "info [at] cafe-engel [dot] fi",
        "info(at)cafe-engel.fi",
        "info (at) cafe-engel (dot) fi",
        "info{at}cafe-engel.fi",
        "info [ät] cafe-engel [piste] fi",
        "info at cafe-engel dot fi",
        "INFO AT cafe-engel DOT fi",
        "info%40cafe-engel.fi",
        "info @ cafe-engel.fi",
    ],
)
def test_obfuscated_addresses_are_undone(text: str) -> None:
    assert emails(f"<p>{text}</p>") == {"info@cafe-engel.fi": "obfuscated"}


def test_html_entities_are_decoded_by_the_parser() -> None:
    assert emails("<p>info&#64;cafe-engel&#46;fi</p>") == {"info@cafe-engel.fi": "text"}
    assert emails("<p>info&commat;cafe-engel.fi</p>") == {"info@cafe-engel.fi": "text"}


def test_an_address_needs_a_real_public_suffix() -> None:
    assert emails("<p>lorem ipsum at dolor dot sit, a@b.notatld</p>") == {}
    assert emails("<p>lorem at ipsum dot fi</p>") == {"lorem@ipsum.fi": "obfuscated"}


def test_prose_with_at_and_dot_is_not_an_address() -> None:
    assert emails("<p>Meet us at the market at noon. Dot the i's.</p>") == {}
    assert deobfuscate("See you at noon") == "See you at noon"


# -- Cloudflare --------------------------------------------------------------------------------


def test_cloudflare_data_cfemail_and_protection_links_are_decoded() -> None:
    body = (
        f'<a href="/cdn-cgi/l/email-protection#{cf_encode("ajanvaraus@cafe-engel.fi")}">'
        '<span class="__cf_email__">[email&#160;protected]</span></a>'
        f'<span class="__cf_email__" data-cfemail="{cf_encode("maria@cafe-engel.fi", 0x33)}">[email protected]</span>'
    )
    assert emails(body) == {"ajanvaraus@cafe-engel.fi": "cloudflare", "maria@cafe-engel.fi": "cloudflare"}


def test_decode_cfemail_known_value_and_malformed_input() -> None:
    # key 0x42: "a" = 0x61 ^ 0x42 = 0x23, "@" = 0x02, "b" = 0x20
    assert decode_cfemail("42230220") == "a@b"
    assert decode_cfemail(cf_encode("a@b.fi", 0x7F)) == "a@b.fi"
    for bad in ("", "4", "zz11", "123", "42ff"):
        assert decode_cfemail(bad) is None


# -- false positives ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "logo@2x.png",
        "banner@3x.webp",
        "8f3a9b2c4d5e6f708192a3b4c5d6e7f8@sentry.wixpress.com",
        "abc@sentry-next.wixpress.com",
        "a1b2c3d4e5f6a7b8c9d0@o123456.ingest.sentry.io",
        "john.doe@example.com",
        "your.name@yourdomain.com",
        "noreply@cafe-engel.fi",
        "x" * 60 + "@cafe-engel.fi",
        "1234567890@cafe-engel.fi",
        "user@domain.com",
    ],
)
def test_false_positives_are_dropped(address: str) -> None:
    assert clean_email(address) is None
    assert emails(f"<p>{address}</p>") == {}


def test_real_addresses_are_not_junk() -> None:
    for address in ("info@cafe-engel.fi", "anna.virtanen@cafe-engel.fi", "engel1987@gmail.com"):
        assert not is_junk_email(address), address


# -- phones and socials --------------------------------------------------------------------------


def test_tel_links_become_e164_numbers() -> None:
    page = extract(
        html(
            '<a href="tel:+358%209%20652%20776">call</a><a href="tel:09 652 776">local</a>'
            '<a href="tel:0046 8 123 456 78">se</a><a href="tel:123">junk</a>'
        ),
        URL,
        country="FI",
    )
    assert page.phones == ("+3589652776", "+46812345678")


@pytest.mark.parametrize(
    ("href", "profile"),
    [
        ("https://www.facebook.com/cafeengel/", "https://www.facebook.com/cafeengel"),
        ("https://m.facebook.com/cafeengel?ref=bookmarks", "https://www.facebook.com/cafeengel"),
        ("https://www.facebook.com/profile.php?id=1000123", "https://www.facebook.com/profile.php?id=1000123"),
        ("https://instagram.com/cafe.engel?hl=fi", "https://www.instagram.com/cafe.engel"),
        ("https://www.linkedin.com/company/cafe-engel/about/", "https://www.linkedin.com/company/cafe-engel"),
        ("https://twitter.com/cafeengel/status/123", "https://twitter.com/cafeengel"),
        ("https://x.com/@cafeengel", "https://x.com/cafeengel"),
        ("https://www.youtube.com/@cafeengel/videos", "https://www.youtube.com/@cafeengel"),
        ("https://youtube.com/channel/UC123", "https://www.youtube.com/channel/UC123"),
        ("https://www.tiktok.com/@cafeengel", "https://www.tiktok.com/@cafeengel"),
    ],
)
def test_social_profiles_are_canonical(href: str, profile: str) -> None:
    assert social_profile(href) == profile
    assert extract(html(f'<a href="{href}">us</a>'), URL).socials == (profile,)


@pytest.mark.parametrize(
    "href",
    [
        "https://www.facebook.com/sharer/sharer.php?u=https://cafe-engel.fi",
        "https://twitter.com/intent/tweet?text=hi",
        "https://www.linkedin.com/shareArticle?url=x",
        "https://www.facebook.com/",
        "https://www.instagram.com/p/Cxyz/",
        "https://www.youtube.com/watch?v=abc",
        "https://www.tiktok.com/tag/coffee",
        "https://www.linkedin.com/in",
        "https://facebook.com/tr?id=1&ev=PageView",
        "https://notfacebook.com/cafe",
    ],
)
def test_share_buttons_and_network_pages_are_not_profiles(href: str) -> None:
    assert social_profile(href) is None


# -- links to follow ---------------------------------------------------------------------------


def test_contact_links_same_site_ranked_and_files_skipped() -> None:
    page = extract(
        html(
            '<a href="/privacy">Tietosuoja</a><a href="/team/">Our team</a><a href="meista">Meistä</a>'
            '<a href="https://cafe-engel.fi/yhteystiedot">Yhteystiedot</a><a href="/menu">Menu</a>'
            '<a href="/hinnasto.pdf">Contact PDF</a><a href="https://other.fi/contact">Contact partner</a>'
            '<a href="/page?id=4">Ota yhteyttä</a><a href="/impressum#top">Impressum</a><a href="#contact">Contact</a>'
        ),
        URL,
    )
    assert contact_links(page.links, URL) == [
        "https://cafe-engel.fi/yhteystiedot",
        "https://www.cafe-engel.fi/page?id=4",
        "https://www.cafe-engel.fi/impressum",
        "https://www.cafe-engel.fi/meista",
        "https://www.cafe-engel.fi/team/",
        "https://www.cafe-engel.fi/privacy",
    ]


def test_base_href_is_honoured_and_seen_pages_skipped() -> None:
    page = extract(
        '<html><head><base href="https://www.cafe-engel.fi/fi/"></head><body>'
        '<a href="kontakt">Kontakt</a><a href="/">Koti</a></body></html>',
        URL,
    )
    assert contact_links(page.links, URL) == ["https://www.cafe-engel.fi/fi/kontakt"]
    assert contact_links(page.links, URL, seen=["https://www.cafe-engel.fi/fi/kontakt"]) == []


def test_page_kind_reads_path_and_text() -> None:
    assert page_kind(Link("https://a.fi/x", "Contact us")) == 0
    assert page_kind(Link("https://a.fi/ueber-uns", "")) == 1
    assert page_kind(Link("https://a.fi/menu", "Menu")) is None


def test_malformed_html_does_not_raise() -> None:
    page = extract(b"<html><body><a href='http://[bad'>x</a><p>info@cafe-engel.fi<div></span>\xff\xfe", URL)
    assert [e.address for e in page.emails] == ["info@cafe-engel.fi"]


# -- the e-mail rules ---------------------------------------------------------------------------


def test_registrable_domain_from_the_bundled_suffix_list() -> None:
    assert registrable_domain("www.shop.example.co.uk") == "example.co.uk"
    assert registrable_domain("Cafe-Engel.FI.") == "cafe-engel.fi"
    assert registrable_domain("cafe.blogspot.com") == "cafe.blogspot.com"  # a private suffix: the user's site
    assert registrable_domain("co.uk") is None
    assert registrable_domain("127.0.0.1") == "127.0.0.1"
    assert registrable_domain("") is None and registrable_domain("localhost") is None


def test_role_and_personal_addresses() -> None:
    assert [
        email_kind(a) for a in ("info@x.fi", "Office@x.fi", "info.helsinki@x.fi", "sales-fi@x.fi", "myynti@x.fi")
    ] == ["role"] * 5
    assert [email_kind(a) for a in ("anna.virtanen@x.fi", "matti@x.fi", "a.v@x.fi")] == ["personal"] * 3


def test_on_domain_and_free_mail() -> None:
    assert is_on_domain("info@cafe-engel.fi", "www.cafe-engel.fi")
    assert is_on_domain("info@mail.cafe-engel.fi", "cafe-engel.fi")
    assert not is_on_domain("info@cafe-engel.com", "cafe-engel.fi")
    assert not is_on_domain("engel@gmail.com", "cafe-engel.fi")
    assert not is_on_domain("info@cafe-engel.fi", None)
    assert is_free_mail("Engel@GMail.com") and not is_free_mail("info@cafe-engel.fi")
