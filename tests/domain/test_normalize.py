from __future__ import annotations

import pytest

from prospectpro.domain.normalize import (
    address_key,
    first_value,
    format_phone,
    is_social_or_generic_host,
    normalize_email,
    normalize_website,
    phone_e164,
    split_values,
    text_key,
    website_domain,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a;b", "a"),
        ("  ; b ;c", "b"),
        ("single", "single"),
        (" ; ;", None),
        ("", None),
        (None, None),
    ],
)
def test_first_value(raw: str | None, expected: str | None) -> None:
    assert first_value(raw) == expected


def test_first_value_keeps_commas_unless_asked() -> None:
    assert first_value("Cafe, Bar") == "Cafe, Bar"
    assert first_value("a, b", (",",)) == "a"
    assert split_values("x / y; z", (";", " / ")) == ["x", "y", "z"]


@pytest.mark.parametrize(
    "raw",
    ["+358 9 652776", "09 652 776", "+3589652776", "00358 9 652776", "09 / 652776"],
)
def test_phone_e164_finnish_forms(raw: str) -> None:
    assert phone_e164(raw, "FI") == "+3589652776"


def test_phone_e164_takes_first_valid_of_several() -> None:
    assert phone_e164("12345; +358 40 1234567; 09 652776", "FI") == "+358401234567"
    assert phone_e164("+358 40 1234567, 09 652776", "fi") == "+358401234567"


@pytest.mark.parametrize(
    ("raw", "country"),
    [
        ("garbage", "FI"),
        ("12345", "FI"),
        ("", "FI"),
        (None, "FI"),
        ("09 652776", None),  # a local number needs a country to be read
        ("09 652776", "XX"),
        ("09 652776", "Finland"),
        ("+" + "9" * 400, "FI"),
        ("+000 000", None),
    ],
)
def test_phone_e164_rejects_garbage_without_raising(raw: str | None, country: str | None) -> None:
    assert phone_e164(raw, country) is None


def test_phone_e164_international_number_ignores_region() -> None:
    assert phone_e164("+1 650-253-0000", None) == "+16502530000"
    assert phone_e164("+1 650-253-0000", "FI") == "+16502530000"


def test_format_phone() -> None:
    assert format_phone("+3589652776") == "+358 9 652776"
    assert format_phone("+358401234567") == "+358 40 1234567"
    assert format_phone("not a number") == "not a number"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("www.teemaa.com", "http://www.teemaa.com"),
        ("  https://www.Cafe-Engel.FI/menu?q=1#top ", "https://www.cafe-engel.fi/menu?q=1"),
        ("HTTP://Example.com", "http://example.com"),
        ("example.com:8080/a", "http://example.com:8080/a"),
        ("//cdn.example.com/x", "http://cdn.example.com/x"),
        ("https://a.example.fi;https://b.example.fi", "https://a.example.fi"),
        ("http://example.com.", "http://example.com"),
        ("https://xn--caf-dma.fi", "https://xn--caf-dma.fi"),
    ],
)
def test_normalize_website_accepts(raw: str, expected: str) -> None:
    assert normalize_website(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "javascript:alert(1)",
        "mailto:info@example.fi",
        "tel:+3589652776",
        "ftp://example.com",
        "http://localhost",
        "http://192.168.0.1",
        "example.c0m",
        "http://exa mple.com",
        "http://-bad.example.com",
        "http://user:secret@example.com",
        "http://example.com:99999",
        "http://",
        "https://" + "a" * 600 + ".com",
        "",
        "   ",
        None,
    ],
)
def test_normalize_website_rejects(raw: str | None) -> None:
    assert normalize_website(raw) is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://www.Teemaa.com:8443/x", "teemaa.com"),
        ("www.teemaa.com", "teemaa.com"),
        ("http://shop.teemaa.com", "shop.teemaa.com"),
        ("javascript:alert(1)", None),
        (None, None),
    ],
)
def test_website_domain(url: str | None, expected: str | None) -> None:
    assert website_domain(url) == expected


@pytest.mark.parametrize(
    "domain",
    [
        "facebook.com",
        "m.facebook.com",
        "www.instagram.com",
        "twitter.com",
        "x.com",
        "linkedin.com",
        "fi.linkedin.com",
        "google.com",
        "sites.google.com",
        "google.fi",
        "goo.gl",
        "cafe-engel.business.site",
        "someone.wixsite.com",
        "tripadvisor.fi",
        "tripadvisor.co.uk",
        "fi.tripadvisor.com",
        "yelp.com",
        "yelp.fi",
        "Facebook.COM.",
    ],
)
def test_social_or_generic_hosts(domain: str) -> None:
    assert is_social_or_generic_host(domain)


@pytest.mark.parametrize(
    "domain", ["teemaa.com", "cafeengel.fi", "notfacebook.com", "box.com", "xx.com", "yelper.fi"]
)
def test_own_hosts_are_not_generic(domain: str) -> None:
    assert not is_social_or_generic_host(domain)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("info@cafeengel.fi", "info@cafeengel.fi"),
        ("  info@CafeEngel.FI ", "info@cafeengel.fi"),
        ("mailto:info@cafeengel.fi?subject=Hello%20there", "info@cafeengel.fi"),
        ("MAILTO:info@cafeengel.fi", "info@cafeengel.fi"),
        ("info%40cafeengel.fi", "info@cafeengel.fi"),
        ("sales@teemaa.com; info@teemaa.com", "sales@teemaa.com"),
        ("sales@teemaa.com, info@teemaa.com", "sales@teemaa.com"),
    ],
)
def test_normalize_email_accepts(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "logo@2x.png",
        "icon-sprite@3x.webp",
        "not an email",
        "@cafeengel.fi",
        "info@",
        "info@@cafeengel.fi",
        "info@localhost",
        "info@cafeengel",
        "mailto:",
        "",
        None,
    ],
)
def test_normalize_email_rejects(raw: str | None) -> None:
    assert normalize_email(raw) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Cafè  Sanomakahvila!", "cafe sanomakahvila"),
        ("Café Engel", "cafe engel"),
        ("CAFE-ENGEL", "cafe engel"),
        ("Ravintola Säkkipilli", "ravintola sakkipilli"),
        ("Straße", "strasse"),
        ("ﬁka_bar", "fika bar"),  # the "ﬁ" ligature decomposes under NFKD
        ("  ...  ", ""),
    ],
)
def test_text_key(text: str, expected: str) -> None:
    assert text_key(text) == expected


def test_address_key() -> None:
    assert address_key("Aleksanterinkatu", "26") == "aleksanterinkatu 26"
    assert address_key("Aleksanterinkatu ", "26 A") == address_key("aleksanterinkatu", "26a")
    assert address_key("Mannerheimintie", "5") != address_key("Mannerheimintie", "50")
    assert address_key("Aleksanterinkatu", None) is None
    assert address_key(None, "26") is None
    assert address_key("Aleksanterinkatu", "  ") is None


def test_phone_e164_slash_separated_numbers() -> None:
    assert phone_e164("040 123 4567 / 09 652776", "FI") == "+358401234567"
    assert phone_e164("foo / 09 652776", "FI") == "+3589652776"
