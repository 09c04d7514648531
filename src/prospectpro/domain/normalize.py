"""Turn the loose values sources give (OSM tags, scraped pages) into comparable ones.

Every function here is pure and total: bad input gives None, never an exception,
because one malformed tag must not sink a whole campaign.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote, urlsplit

import phonenumbers
from email_validator import EmailNotValidError, validate_email

# OSM's documented multi-value separator.
VALUE_SEPARATORS: tuple[str, ...] = (";",)
# People also write "a, b" in phone tags; "," is never part of a single number, whereas
# it can be part of a website or a name. "/" is tried only after the whole value (below).
PHONE_SEPARATORS: tuple[str, ...] = (";", ",")

# leads.website is String(500); a longer "URL" is junk anyway.
MAX_URL_LENGTH = 500

_HAS_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
# "javascript:…", "mailto:…", "tel:…": a scheme without "//". A digit after the colon is a
# port ("example.com:8080"), which is a schemeless host, not a scheme.
_OPAQUE_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:(?!\d)")
_LABEL = re.compile(r"^(?!-)[^\W_](?:[\w-]*[^\W_])?$")
_NON_ALNUM = re.compile(r"[\W_]+")
# "26 a" and "26a" are the same door.
_NUMBER_LETTER = re.compile(r"(?<=\d) (?=[a-z]\b)")

# Bare brand labels: any host whose non-TLD labels include one is a platform page
# (tripadvisor.fi, fi.tripadvisor.com, maps.google.com), whatever the country TLD.
_GENERIC_BRANDS = frozenset(
    {
        "facebook", "instagram", "linkedin", "google", "tripadvisor", "yelp",
        "foursquare", "youtube", "tiktok", "pinterest", "twitter",
    }
)  # fmt: skip
# Exact registrable domains (and their subdomains) that host pages for many businesses.
_GENERIC_DOMAINS = frozenset(
    {
        "x.com", "fb.com", "fb.me", "m.me", "goo.gl", "g.page", "g.co", "business.site",
        "wixsite.com", "wix.com", "weebly.com", "wordpress.com", "blogspot.com",
        "jimdosite.com", "jimdofree.com", "squarespace.com", "webnode.com", "webnode.fi",
        "linktr.ee", "bit.ly", "tinyurl.com", "t.me", "wa.me", "whatsapp.com", "vk.com",
        "youtu.be", "booking.com", "airbnb.com", "opentable.com", "thefork.com",
        "wolt.com", "foodora.fi", "ubereats.com", "just-eat.com", "eat.fi",
        "finder.fi", "fonecta.fi", "yell.com", "yellowpages.com",
    }
)  # fmt: skip
# Domains that appear in scraped pages as asset names, never as mailboxes ("logo@2x.png").
_FILE_EXTENSIONS = frozenset(
    {"png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tif", "tiff", "avif", "heic",
     "css", "js", "pdf"}
)  # fmt: skip


def split_values(raw: str | None, seps: tuple[str, ...] = VALUE_SEPARATORS) -> list[str]:
    """All stripped non-empty values of a multi-valued field."""
    if not raw:
        return []
    pattern = "|".join(re.escape(s) for s in seps)
    return [v.strip() for v in re.split(pattern, raw) if v.strip()]


def first_value(raw: str | None, seps: tuple[str, ...] = VALUE_SEPARATORS) -> str | None:
    """The first value of a multi-valued OSM field ("a;b" → "a")."""
    values = split_values(raw, seps)
    return values[0] if values else None


def phone_e164(raw: str | None, country: str | None) -> str | None:
    """The first valid number in raw as E.164, read in the country's local dialling plan."""
    values: list[str] = []
    for piece in split_values(raw, PHONE_SEPARATORS):
        # "/" separates numbers ("040 123 4567 / 09 652776") but also an area code
        # ("09 / 652776", whose tail alone would be a different, valid number): whole first.
        values.append(piece)
        if "/" in piece:
            values.extend(split_values(piece, ("/",)))
    region = country.strip().upper() if country and len(country.strip()) == 2 else None
    for value in values:
        try:
            number = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


def format_phone(e164: str) -> str:
    """Human form ("+358 9 652776"); input that is not a number is shown as it was."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def _valid_host(host: str) -> bool:
    labels = host.split(".")
    if len(labels) < 2 or len(host) > 253:
        return False
    tld = labels[-1]
    tld_ok = (tld.isalpha() and len(tld) >= 2) or (tld.startswith("xn--") and len(tld) > 4)
    return tld_ok and all(len(label) <= 63 and _LABEL.match(label) for label in labels)


def normalize_website(raw: str | None) -> str | None:
    """An http(s) URL with a real-looking, lowercased host, or None.

    Only the first ";"-value is used. The fragment is dropped (it never names another
    site); credentials in the URL are refused (a business site never needs them).
    """
    value = first_value(raw)
    if not value or len(value) > MAX_URL_LENGTH or any(c.isspace() for c in value):
        return None
    if value.startswith("//"):
        value = "http:" + value
    elif not _HAS_SCHEME.match(value):
        if _OPAQUE_SCHEME.match(value):
            return None
        value = "http://" + value
    try:
        parts = urlsplit(value)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host or parts.username or parts.password:
        return None
    host = host.rstrip(".")
    if not _valid_host(host):
        return None
    netloc = f"{host}:{port}" if port is not None else host
    query = f"?{parts.query}" if parts.query else ""
    url = f"{scheme}://{netloc}{parts.path}{query}"
    return url if len(url) <= MAX_URL_LENGTH else None


def website_domain(url: str | None) -> str | None:
    """The site's host for comparison: lowercased, no "www.", no port."""
    normalized = normalize_website(url)
    if normalized is None:
        return None
    host = urlsplit(normalized).hostname or ""
    return host.removeprefix("www.") or None


def is_social_or_generic_host(domain: str) -> bool:
    """True when the host serves pages for many businesses, so it identifies none."""
    host = domain.strip().lower().rstrip(".").removeprefix("www.")
    labels = host.split(".")
    if any(label in _GENERIC_BRANDS for label in labels[:-1]):
        return True
    return any(".".join(labels[i:]) in _GENERIC_DOMAINS for i in range(len(labels) - 1))


def normalize_email(raw: str | None) -> str | None:
    """The first address in raw, syntax-checked and normalized (lowercase domain), or None.

    Accepts what pages and tags hold: "mailto:a@b.fi?subject=Hi", "a@b.fi; c@d.fi",
    percent-encoded "@". No DNS lookup: this must stay pure and fast.
    """
    value = first_value(raw, (";", ","))
    if not value:
        return None
    if value[:7].lower() == "mailto:":
        value = value[7:]
    value = unquote(value.split("?", 1)[0]).strip()
    if not value or len(value) > 320:
        return None
    try:
        normalized = validate_email(value, check_deliverability=False).normalized
    except (EmailNotValidError, ValueError):
        return None
    tld = normalized.rsplit(".", 1)[-1].lower()
    return None if tld in _FILE_EXTENSIONS else normalized


def text_key(text: str) -> str:
    """A matching key blind to case, accents and punctuation ("Café  Engel!" → "cafe engel")."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _NON_ALNUM.sub(" ", stripped.casefold()).strip()


def address_key(street: str | None, housenumber: str | None) -> str | None:
    """A matching key for a street address; None unless both parts are present."""
    street_key = text_key(street or "")
    number_key = _NUMBER_LETTER.sub("", text_key(housenumber or ""))
    if not street_key or not number_key:
        return None
    return f"{street_key} {number_key}"
