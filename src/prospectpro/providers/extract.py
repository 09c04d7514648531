"""Contacts from one HTML page: e-mail addresses, phone numbers, social profiles, and the links worth following.

Pure: a page's HTML and its URL in, what it says out. The HTML is parsed with
selectolax (the Lexbor HTML5 parser): links, ``mailto:``/``tel:`` and
Cloudflare's protected addresses come from the element tree, never from
regular expressions over the raw markup. Regular expressions only read the
page's *text* (scripts and styles removed, entities decoded by the parser) for
addresses written out or obfuscated ("info [at] cafe [dot] fi", "%40").

What is not attempted: addresses assembled by JavaScript, reversed strings and
images of addresses (no static extractor sees those).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import phonenumbers
from selectolax.lexbor import LexborHTMLParser, LexborNode

from prospectpro.domain.emails import clean_email, has_known_suffix, registrable_domain
from prospectpro.domain.normalize import phone_e164

EmailHow = Literal["mailto", "cloudflare", "obfuscated", "text"]
# How much to trust an address by how it was published: a link someone made on purpose first.
HOW_RANK: dict[str, int] = {"mailto": 0, "cloudflare": 0, "obfuscated": 1, "text": 2}


@dataclass(frozen=True, slots=True)
class PageEmail:
    address: str
    how: EmailHow


@dataclass(frozen=True, slots=True)
class Link:
    url: str  # absolute, without fragment
    text: str  # the link's text (or title / aria-label), whitespace collapsed


@dataclass(frozen=True, slots=True)
class PageContacts:
    emails: tuple[PageEmail, ...] = ()
    phones: tuple[str, ...] = ()  # E.164
    socials: tuple[str, ...] = ()  # canonical profile URLs
    links: tuple[Link, ...] = ()  # every http(s) link on the page, in document order


# -- the page ---------------------------------------------------------------------

_INVISIBLE = ["script", "style", "noscript", "template", "svg", "head"]
_CF_PATH = "/cdn-cgi/l/email-protection"


def extract(html: str | bytes, page_url: str, *, country: str | None = None) -> PageContacts:
    """Everything ``page_url``'s HTML says about contacts (see the module docstring)."""
    tree = LexborHTMLParser(html if isinstance(html, str) else html.decode("utf-8", "replace"))
    base = _base_url(tree, page_url)
    emails: dict[str, EmailHow] = {}

    def add(raw: str | None, how: EmailHow) -> None:
        address = clean_email(raw)
        if address is not None and (address not in emails or HOW_RANK[how] < HOW_RANK[emails[address]]):
            emails[address] = how

    links: list[Link] = []
    phones: dict[str, None] = {}
    socials: dict[str, None] = {}
    for node in tree.css("a[href], area[href]"):
        href = (node.attributes.get("href") or "").strip()
        lowered = href.lower()
        if lowered.startswith("mailto:"):
            for address in _mailto_addresses(href):
                add(address, "mailto")
        elif lowered.startswith("tel:"):
            number = _phone(unquote(href[4:]), country)
            if number:
                phones[number] = None
        elif _CF_PATH in lowered and "#" in href:
            add(decode_cfemail(href.rsplit("#", 1)[1]), "cloudflare")
        else:
            url = _absolute(base, href)
            if url is None:
                continue
            links.append(Link(url, _link_text(node)))
            profile = social_profile(url)
            if profile:
                socials[profile] = None
    for node in tree.css("[data-cfemail]"):
        add(decode_cfemail(node.attributes.get("data-cfemail") or ""), "cloudflare")

    text = _visible_text(tree)
    for match in _candidates(text):
        add(match, "text")
    plain = set(emails)
    for match in _candidates(deobfuscate(text)):
        if clean_email(match) not in plain:  # found again once undone: it was plain text
            add(match, "obfuscated")
    return PageContacts(
        emails=tuple(PageEmail(a, how) for a, how in emails.items()),
        phones=tuple(phones),
        socials=tuple(socials),
        links=tuple(links),
    )


def _base_url(tree: LexborHTMLParser, page_url: str) -> str:
    node = tree.css_first("base[href]")
    href = node.attributes.get("href") if node is not None else None
    return urljoin(page_url, href.strip()) if href else page_url


def _absolute(base: str, href: str) -> str | None:
    if not href or href.startswith("#"):
        return None
    try:
        parts = urlsplit(urljoin(base, href))
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return urlunsplit((parts.scheme, parts.netloc.lower(), parts.path or "/", parts.query, ""))


def _link_text(node: LexborNode) -> str:
    text = node.text(separator=" ", strip=True) or node.attributes.get("title") or ""
    text = text or node.attributes.get("aria-label") or ""
    return " ".join(text.split())[:200]


def _visible_text(tree: LexborHTMLParser) -> str:
    tree.strip_tags(_INVISIBLE)
    root = tree.body or tree.root
    return root.text(separator=" ") if root is not None else ""


def _mailto_addresses(href: str) -> list[str]:
    """ "mailto:a%40b.fi,c@d.fi?subject=Hi" → ["a@b.fi", "c@d.fi"] (RFC 6068: the query is not the address)."""
    target = href[7:].split("?", 1)[0]
    return [unquote(part).strip() for part in re.split(r"[,;]", target) if part.strip()]


def _phone(raw: str, country: str | None) -> str | None:
    raw = raw.strip()
    number = phone_e164(raw, country)
    if number is None and raw.startswith("00"):
        number = phone_e164("+" + raw[2:], None)
    if number is None:
        try:  # a number in international form needs no country
            parsed = phonenumbers.parse(raw, None)
        except phonenumbers.NumberParseException:
            return None
        if phonenumbers.is_valid_number(parsed):
            number = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return number


# -- addresses in text ------------------------------------------------------------------

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_PATTERN = re.compile(
    rf"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{{0,63}}@{_LABEL}(?:\.{_LABEL})*\.[A-Za-z]{{2,24}}(?![A-Za-z0-9-])"
)
# "[at]", "(at)", "{at}", "<at>", "[ät]", "(@)": a bracketed at; the same for dot / punkt / piste.
_BRACKET_AT = re.compile(r"\s*[\[({<]\s*(?:at|ät|@|arroba|miuku)\s*[\])}>]\s*", re.IGNORECASE)
_BRACKET_DOT = re.compile(r"\s*[\[({<]\s*(?:dot|punkt|piste|point|\.)\s*[\])}>]\s*", re.IGNORECASE)
# "info at cafe dot fi": spelled-out words, accepted only when the whole thing forms host labels and a TLD.
_SPELLED = re.compile(
    r"(?<![\w.+-])([A-Za-z0-9][A-Za-z0-9._+-]*)\s+(?:at|AT)\s+([A-Za-z0-9-]+(?:\s+(?:dot|DOT)\s+[A-Za-z0-9-]+)+)\b"
)
_SPELLED_DOT = re.compile(r"\s+(?:dot|DOT)\s+")
_SPACED_AT = re.compile(r"(?<=[\w.+-])\s+@\s*(?=\w)|(?<=[\w.+-])\s*@\s+(?=\w)")
_PERCENT_AT = re.compile(r"%40", re.IGNORECASE)
MAX_CANDIDATES = 200


def _candidates(text: str) -> list[str]:
    """Distinct address-like strings in text whose domain ends in a real suffix ("at dolor dot sit" is prose).

    At most MAX_CANDIDATES: a page repeating thousands of addresses is not worth validating them all.
    """
    found: dict[str, None] = {}
    for match in EMAIL_PATTERN.finditer(text):
        value = match.group(0)
        if value not in found and has_known_suffix(value.rsplit("@", 1)[1]):
            found[value] = None
            if len(found) >= MAX_CANDIDATES:
                break
    return list(found)


def deobfuscate(text: str) -> str:
    """The text with the usual hand obfuscations of addresses undone (see the module docstring)."""
    text = _PERCENT_AT.sub("@", text)
    text = _BRACKET_AT.sub("@", text)
    text = _BRACKET_DOT.sub(".", text)
    text = _SPELLED.sub(lambda m: f"{m.group(1)}@{_SPELLED_DOT.sub('.', m.group(2))}", text)
    return _SPACED_AT.sub("@", text)


def decode_cfemail(encoded: str) -> str | None:
    """Cloudflare's e-mail protection: hex bytes, the first the XOR key of the rest; None when malformed."""
    encoded = encoded.strip()
    if len(encoded) < 4 or len(encoded) % 2:
        return None
    try:
        data = bytes.fromhex(encoded)
    except ValueError:
        return None
    key = data[0]
    try:
        return bytes(b ^ key for b in data[1:]).decode("utf-8")
    except UnicodeDecodeError:
        return None


# -- social profiles ---------------------------------------------------------------------

SOCIAL_NETWORKS: dict[str, str] = {
    "facebook.com": "facebook",
    "fb.com": "facebook",
    "instagram.com": "instagram",
    "linkedin.com": "linkedin",
    "x.com": "x",
    "twitter.com": "x",
    "youtube.com": "youtube",
    "tiktok.com": "tiktok",
}
_CANONICAL_HOST = {
    "facebook": "www.facebook.com",
    "instagram": "www.instagram.com",
    "linkedin": "www.linkedin.com",
    "youtube": "www.youtube.com",
    "tiktok": "www.tiktok.com",
}
# First path segments that are the network's own pages (sharing, login, posts), not a business's profile.
_NOT_PROFILES = frozenset(
    {
        "sharer", "sharer.php", "share", "share.php", "intent", "sharearticle", "dialog", "plugins", "tr", "login",
        "login.php", "home.php", "hashtag", "search", "explore", "watch", "embed", "p", "reel", "reels", "stories",
        "legal", "policies", "policy", "privacy", "about", "help", "terms", "tos", "signup", "i", "home",
        "results", "feed", "shorts", "playlist", "events", "groups", "marketplace", "gaming", "settings", "oauth",
        "v", "tag", "discover", "music", "live", "ads", "business", "developers", "jobs", "pulse", "posts",
        "feature", "features", "static", "images", "img", "assets",
    }
)  # fmt: skip
_YOUTUBE_KINDS = frozenset({"channel", "c", "user"})
_LINKEDIN_KINDS = frozenset({"company", "in", "school", "showcase"})


def social_network(url: str) -> str | None:
    """The network ("facebook", "x"…) whose site ``url`` is on, whatever the page."""
    try:
        host = (urlsplit(url if "//" in url else "https://" + url).hostname or "").rstrip(".")
    except ValueError:
        return None
    domain = registrable_domain(host) if host else None
    return SOCIAL_NETWORKS.get(domain or "")


def social_profile(url: str) -> str | None:
    """The canonical URL of the profile ``url`` points to, or None when it is no profile (a share button…)."""
    network = social_network(url)
    if network is None:
        return None
    parts = urlsplit(url if "//" in url else "https://" + url)
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if not segments or segments[0].lower() in _NOT_PROFILES:
        return None
    first = segments[0]
    if network == "facebook":
        if first.lower() == "profile.php":
            match = re.search(r"(?:^|&)id=(\d+)", parts.query)
            path = f"profile.php?id={match.group(1)}" if match else None
        elif first.lower() == "pages" and len(segments) >= 2:
            path = "/".join(segments[:3])
        else:
            path = first
    elif network == "linkedin":
        path = f"{first.lower()}/{segments[1]}" if first.lower() in _LINKEDIN_KINDS and len(segments) >= 2 else None
    elif network == "youtube":
        if first.startswith("@"):
            path = first
        else:
            path = f"{first.lower()}/{segments[1]}" if first.lower() in _YOUTUBE_KINDS and len(segments) >= 2 else None
    elif network == "tiktok":
        path = first if first.startswith("@") and len(first) > 1 else None
    else:  # instagram, x
        path = first.lstrip("@") or None
    if not path or not re.fullmatch(r"[\w.@%=?/-]+", path):
        return None
    host = _CANONICAL_HOST.get(network) or ("x.com" if "x.com" in (parts.hostname or "") else "twitter.com")
    return f"https://{host}/{path}"


# -- which links to follow ---------------------------------------------------------------

# Lower is followed first: where a business writes its contact details, then who it is, then its people.
_PAGE_KINDS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (0, ("contact", "kontakt", "yhteys", "yhteystiedot", "ota-yhteytta", "otayhteytta", "contacto", "contatti",
         "kontakta", "impressum", "imprint", "mentions-legales")),
    (1, ("about", "meista", "tietoa", "uber-uns", "ueber-uns", "who-we-are", "company", "yritys", "om-oss")),
    (2, ("team", "tiimi", "staff", "henkilokunta", "henkilosto", "people", "our-people", "mitarbeiter")),
    (3, ("legal", "privacy", "tietosuoja", "datenschutz", "rekisteriseloste")),
)  # fmt: skip
_FILE_SUFFIXES = (".pdf", ".jpg", ".jpeg", ".png", ".gif", ".svg", ".webp", ".zip", ".doc", ".docx", ".mp4", ".mp3")


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def page_kind(link: Link) -> int | None:
    """How worth following a link is (0 best), or None when it looks like no contact-ish page."""
    path = _fold(unquote(urlsplit(link.url).path))
    text = _fold(link.text)
    words = re.sub(r"[\s_]+", "-", text)
    for rank, keys in _PAGE_KINDS:
        if any(key in path or key in words or key.replace("-", " ") in text for key in keys):
            return rank
    return None


def site_host(url: str) -> str:
    """The host two pages must share to be one site: lowercased, without "www.", port kept."""
    parts = urlsplit(url)
    host = (parts.hostname or "").removeprefix("www.")
    return f"{host}:{parts.port}" if parts.port else host


def contact_links(links: Iterable[Link], page_url: str, seen: Sequence[str] = ()) -> list[str]:
    """The same-site links that look like contact / about / impressum / team / legal pages, best first."""
    host = site_host(page_url)
    skip = {_without_slash(u) for u in (page_url, *seen)}
    ranked: dict[str, tuple[int, int, str]] = {}
    for order, link in enumerate(links):
        if site_host(link.url) != host or urlsplit(link.url).path.lower().endswith(_FILE_SUFFIXES):
            continue
        kind = page_kind(link)
        key = _without_slash(link.url)
        if kind is None or key in skip:
            continue
        if key not in ranked or (kind, order) < ranked[key][:2]:
            ranked[key] = (kind, order, link.url)
    return [url for _, _, url in sorted(ranked.values())]


def _without_slash(url: str) -> str:
    return url[:-1] if url.endswith("/") and urlsplit(url).path != "/" else url
