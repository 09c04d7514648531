"""E-mail addresses as contact data: which ones are real, whose they are, which domain they belong to.

Pure and total, like ``domain.normalize``: bad input gives None or False, never
an exception. Registrable domains ("shop.example.co.uk" → "example.co.uk")
come from the Public Suffix List snapshot shipped inside the
``publicsuffixlist`` package: nothing is downloaded at run time.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Literal

from publicsuffixlist import PublicSuffixList

from prospectpro.domain.normalize import normalize_email

EmailKind = Literal["role", "personal"]

# Mailboxes of a function, not a person: the lead's e-mail by default in every tier.
ROLE_LOCAL_PARTS = frozenset(
    {
        "info", "office", "hello", "hi", "hey", "contact", "contacts", "kontakt", "mail", "email", "post",
        "posti", "sales", "myynti", "support", "help", "service", "services", "asiakaspalvelu", "customerservice",
        "admin", "administration", "reception", "frontdesk", "enquiries", "enquiry", "inquiries", "inquiry",
        "booking", "bookings", "reservations", "reservation", "varaus", "varaukset", "orders", "order",
        "tilaukset", "team", "welcome", "general", "studio", "shop", "store", "kauppa", "toimisto", "office1",
        "billing", "invoice", "invoices", "laskutus", "accounts", "accounting", "finance", "hr", "jobs",
        "careers", "rekry", "press", "media", "marketing", "events", "catering", "restaurant", "ravintola",
        "kahvila", "cafe", "bar", "hotel", "clinic", "klinikka", "vastaanotto", "ajanvaraus", "appointments",
        "feedback", "palaute", "webmaster", "hostmaster", "postmaster", "privacy", "legal", "gdpr", "tietosuoja",
        "anfrage", "buero", "tilaus", "hei", "moi", "terve", "about", "company", "firma", "kontor", "hej", "praxis", "bestellung", "hallo", "bonjour", "ciao", "hola",
    }
)  # fmt: skip

# Free webmail: an address there is not on the business's own domain (ranked below one that is).
FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "yahoo.fr", "yahoo.de", "ymail.com",
        "hotmail.com", "hotmail.fi", "hotmail.co.uk", "hotmail.de", "hotmail.fr", "outlook.com", "outlook.fi",
        "live.com", "live.fi", "msn.com", "icloud.com", "me.com", "mac.com", "aol.com", "gmx.com", "gmx.de",
        "gmx.net", "web.de", "t-online.de", "mail.com", "mail.ru", "yandex.ru", "yandex.com", "protonmail.com",
        "proton.me", "pm.me", "zoho.com", "tutanota.com", "suomi24.fi", "luukku.com", "kolumbus.fi", "elisanet.fi",
        "welho.com", "saunalahti.fi", "netti.fi", "wp.pl", "o2.pl", "libero.it", "orange.fr", "free.fr",
        "laposte.net", "seznam.cz", "qq.com", "163.com",
    }
)  # fmt: skip

# Addresses that pages carry but nobody reads: error trackers, site builders, templates, placeholders.
_JUNK_DOMAINS = frozenset(
    {
        "example.com", "example.org", "example.net", "example.fi", "example.de", "domain.com", "yourdomain.com",
        "your-domain.com", "email.com", "company.com", "yourcompany.com", "sentry.io", "sentry-next.wixpress.com",
        "sentry.wixpress.com", "wixpress.com", "wix.com", "ingest.sentry.io", "test.com", "localhost",
        "mysite.com", "website.com", "sample.com", "godaddy.com", "squarespace.com", "shopify.com",
    }
)  # fmt: skip
_JUNK_DOMAIN_SUFFIXES = (".sentry.io", ".wixpress.com", ".example.com", ".invalid", ".local", ".test.com")
# Placeholders and no-reply mailboxes: real syntax, nobody to reach.
_JUNK_LOCAL_PARTS = frozenset(
    {
        "name", "yourname", "your.name", "firstname.lastname", "first.last", "etunimi.sukunimi", "user",
        "username", "email", "youremail", "your.email", "someone", "somebody", "john.doe", "jane.doe", "johndoe",
        "noreply", "no-reply", "no_reply", "donotreply", "do-not-reply", "mailer-daemon", "nobody", "test",
    }
)  # fmt: skip
MAX_LOCAL_PART = 40  # longer ones on pages are hashes and tracking ids, not mailboxes
_HEXISH = re.compile(r"^[0-9a-f]{16,}$")  # sentry keys, message ids
_DIGITS = re.compile(r"\d")


@functools.cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()  # the bundled snapshot; it never fetches


def _host(value: str) -> str:
    return value.strip().lower().rstrip(".")


def registrable_domain(host: str | None) -> str | None:
    """The domain one registers ("www.shop.example.co.uk" → "example.co.uk"); an IP literal is itself.

    None for a public suffix alone ("co.uk") or an empty host. Hosts under a
    private suffix (blogspot.com, wixsite.com…) are their own registrable domain,
    as the list intends: one user's site, not the platform's.
    """
    if not host:
        return None
    host = _host(host).strip("[]")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if "." not in host:
        return None
    try:
        return _psl().privatesuffix(host)
    except (ValueError, UnicodeError):
        return None


@functools.lru_cache(maxsize=4096)  # a page repeats its few domains many times
def has_known_suffix(host: str) -> bool:
    """True when the host ends in a suffix the Public Suffix List knows ("cafe.fi"; not "dolor.sit", "x.png")."""
    try:
        return _psl().publicsuffix(_host(host), accept_unknown=False) is not None
    except (ValueError, UnicodeError):
        return False


def email_domain(address: str) -> str:
    return address.rsplit("@", 1)[-1].lower()


def local_part(address: str) -> str:
    return address.rsplit("@", 1)[0].lower()


def is_junk_email(address: str) -> bool:
    """True for addresses that are found on pages but reach nobody (see the lists above)."""
    local, domain = local_part(address), email_domain(address)
    if domain in _JUNK_DOMAINS or domain.endswith(_JUNK_DOMAIN_SUFFIXES):
        return True
    if local in _JUNK_LOCAL_PARTS or len(local) > MAX_LOCAL_PART or _HEXISH.match(local):
        return True
    # "1234567@…", "a1b2c3d4e5f6@…": mostly digits is an id, not a mailbox
    digits = len(_DIGITS.findall(local))
    return len(local) >= 8 and digits * 2 > len(local)


def clean_email(raw: str | None) -> str | None:
    """A usable contact address from raw page text, or None (invalid syntax, an image name, junk)."""
    address = normalize_email(raw)
    if address is None or is_junk_email(address):
        return None
    return address


def email_kind(address: str) -> EmailKind:
    """ "role" for a function's mailbox (info@, office@, myynti@…), else "personal" (it names a person)."""
    local = local_part(address)
    if local in ROLE_LOCAL_PARTS:
        return "role"
    # "info.helsinki", "sales-fi", "office2": a role mailbox with a branch or number
    head = re.split(r"[._+\-\d]", local, maxsplit=1)[0]
    return "role" if head in ROLE_LOCAL_PARTS else "personal"


def is_free_mail(address: str) -> bool:
    return email_domain(address) in FREE_MAIL_DOMAINS


def is_on_domain(address: str, site_host: str | None) -> bool:
    """True when the address belongs to the same registrable domain as the site."""
    site = registrable_domain(site_host)
    return site is not None and registrable_domain(email_domain(address)) == site
