"""The website contact finder: e-mail addresses, phones and social profiles from the business's own site ($0).

``find_contacts(website, ctx, settings)`` fetches the homepage and up to
``website_max_pages - 1`` same-site pages whose link text or path looks like
contact / about / impressum / team / legal, and returns what
``providers.extract`` finds on them, every value with the URL it was found on.
The whole site fetch is one ledger entry (provider ``website``, operation
``site``, cost 0, reused for ``website_cache_days``), so a resumed job or the
owner's next campaign does not fetch the same site again.

Polite (RFC 9309 robots.txt, our User-Agent's product token; 4xx means
allowed, 5xx or unreachable means nothing is fetched; cached per origin in the
process for at most 24 h), one request at a time per host for the whole process
with ``website_host_delay`` between two, and caps on body size, redirects and
time per page and per site.

SSRF-safe: every request goes through ``net.public_client`` (only public
addresses, ports 80/443 unless ``allow_private_websites``, connections pinned
to the checked address); redirects are followed here, by hand, each hop a new
checked request (and a robots.txt check for its URL).

Outcomes: a ``SiteContacts`` with ``refused`` set when nothing could be fetched
for a reason that will not pass by itself (robots.txt disallows the homepage,
an address that is not public, a social profile, not HTML…) — recorded and
reused like any answer; ``ProviderError("website", …)`` when the site could not
be read for a reason that may pass (robots.txt or the homepage answered 5xx,
timed out or was unreachable): the ledger records an error, which is not reused.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx
from cachetools import TTLCache
from protego import Protego

from prospectpro.config import Settings
from prospectpro.domain.emails import EmailKind, email_kind, is_free_mail, is_on_domain
from prospectpro.domain.normalize import is_social_or_generic_host
from prospectpro.errors import InvalidInput
from prospectpro.gate.client import user_agent
from prospectpro.gate.errors import ProviderError, ProviderErrorKind
from prospectpro.gate.types import GateRequest
from prospectpro.net import BlockedAddress, Policy, Resolver, parse_url, public_client, system_resolver
from prospectpro.providers.extract import HOW_RANK, contact_links, extract, site_host, social_network, social_profile
from prospectpro.providers.protocols import CallContext

PROVIDER = "website"
OPERATION = "site"
ROBOTS_TTL_SECONDS = 24 * 3600.0  # RFC 9309 §2.4: a cached robots.txt is used for at most 24 hours
ROBOTS_MAX_BYTES = 500 * 1024  # RFC 9309 §2.5: parse at least 500 KiB
ROBOTS_MAX_REDIRECTS = 5  # RFC 9309 §2.3.1.2: follow at least five
MAX_CRAWL_DELAY = 10.0  # a robots.txt Crawl-delay is honoured up to this; the site's time cap bounds it anyway
_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"
_HTML_TYPES = ("text/html", "application/xhtml+xml")
# Site builders give each user a subdomain: "cafe.wixsite.com" is the business's own site, "wix.com" is not.
_SITE_BUILDERS = frozenset(
    {"wixsite.com", "weebly.com", "wordpress.com", "blogspot.com", "jimdosite.com", "jimdofree.com",
     "squarespace.com", "webnode.com", "webnode.fi", "business.site"}
)  # fmt: skip


# -- the answer ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FoundEmail:
    address: str
    url: str  # the page it was found on
    kind: EmailKind  # "role" (info@, office@…) or "personal" (names a person: kept only in enterprise)
    on_domain: bool  # on the site's own registrable domain
    how: str = "text"  # mailto | cloudflare | obfuscated | text

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "url": self.url,
            "kind": self.kind,
            "on_domain": self.on_domain,
            "how": self.how,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FoundEmail:
        kind: EmailKind = "personal" if data.get("kind") == "personal" else "role"
        return cls(
            str(data["address"]), str(data["url"]), kind, bool(data.get("on_domain")), str(data.get("how", "text"))
        )


@dataclass(frozen=True, slots=True)
class SiteContacts:
    """What one site says about its business; ``emails`` best first (on-domain, then free webmail, then others;
    mailto above text)."""

    site: str
    emails: tuple[FoundEmail, ...] = ()
    phones: tuple[tuple[str, str], ...] = ()  # (E.164 number, found on url)
    socials: tuple[tuple[str, str], ...] = ()  # (profile url, found on url)
    pages: tuple[str, ...] = ()  # the pages fetched, in order
    refused: str | None = None  # why nothing was fetched (robots, ssrf, social profile, not a site…)

    def best(self, kind: EmailKind | None = None) -> FoundEmail | None:
        """The highest-ranked address (of ``kind`` when given)."""
        return next((e for e in self.emails if kind is None or e.kind == kind), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "emails": [e.to_dict() for e in self.emails],
            "phones": [list(p) for p in self.phones],
            "socials": [list(s) for s in self.socials],
            "pages": list(self.pages),
            "refused": self.refused,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SiteContacts:
        return cls(
            site=str(data.get("site", "")),
            emails=tuple(FoundEmail.from_dict(e) for e in data.get("emails") or ()),
            phones=tuple((str(n), str(u)) for n, u in data.get("phones") or ()),
            socials=tuple((str(p), str(u)) for p, u in data.get("socials") or ()),
            pages=tuple(str(p) for p in data.get("pages") or ()),
            refused=data.get("refused"),
        )


# -- the network the finder uses (tests route names to the simulator's sites) ----------


@dataclass(frozen=True)
class SiteNetwork:
    """How names resolve and sockets open; the product's is the system's. ``inner`` replaces the socket layer."""

    resolver: Resolver = system_resolver
    inner: httpcore.NetworkBackend | None = None


_default_network = SiteNetwork()


def set_default_network(network: SiteNetwork | None) -> SiteNetwork:
    """Replace the network ``find_contacts`` uses when given none (tests/sim/sites.py); returns the previous one."""
    global _default_network
    previous = _default_network
    _default_network = network or SiteNetwork()
    return previous


def find_contacts(
    website: str | None, ctx: CallContext, settings: Settings, *, network: SiteNetwork | None = None
) -> SiteContacts | None:
    """The contacts on a business's website; None when it has none (see the module docstring)."""
    if website is None or not website.strip():
        return None
    raw = website.strip()
    start = site_url(raw)
    if start is None:
        return SiteContacts(site=raw[:500], refused="not a web address")
    if social_network(start) is not None:  # a Facebook page as "website": a social link, nothing crawled
        return SiteContacts(site=start, socials=((social_profile(start) or start, start),), refused="social profile")
    host = urlsplit(start).hostname or ""
    if is_social_or_generic_host(host) and not _builder_subdomain(host):
        return SiteContacts(site=start, refused="not the business's own site (a platform page)")
    origin = origin_of(start)
    key: dict[str, str] = {"site": origin}
    if start != origin + "/":
        key["start"] = start  # a site that starts below its root ("/fi/") is fetched from there
    net = network or _default_network
    answer = ctx.gate.call(
        ctx,
        GateRequest(PROVIDER, OPERATION, key=key, max_cost=Decimal(0), reuse_days=settings.website_cache_days),
        lambda: crawl(start, settings, net).to_dict(),
    )
    return SiteContacts.from_dict(answer.body)


def _builder_subdomain(host: str) -> bool:
    labels = host.lower().removeprefix("www.").split(".")
    return any(".".join(labels[i:]) in _SITE_BUILDERS for i in range(1, len(labels) - 1))


# -- URLs ----------------------------------------------------------------------------


def site_url(raw: str) -> str | None:
    """The URL to start from: http(s), host lowercased, numeric hosts written as the address they mean
    ("2130706433" and "0x7f.1" are 127.0.0.1 to the system resolver, so they are to the SSRF check), no
    fragment; None when it is not a web address."""
    value = raw.strip().split(";", 1)[0].strip()
    if not value or len(value) > 500:
        return None
    if value.startswith("//"):
        value = "http:" + value
    elif "://" not in value:
        value = "http://" + value
    try:
        url = parse_url(value, field="website")
    except InvalidInput:
        return None
    host = url.host
    numeric = _numeric_host(host)
    if numeric is not None:
        url = url.copy_with(host=numeric)
    url = url.copy_with(fragment=None)
    text = str(url)
    if not urlsplit(text).path:  # "http://cafe.fi" and "http://cafe.fi/" are one page: keep one spelling
        text = str(url.copy_with(path="/"))
    return text


def _numeric_host(host: str) -> str | None:
    if not host or any(c not in "0123456789abcdefxABCDEFX." for c in host) or ":" in host:
        return None
    try:
        return socket.inet_ntoa(socket.inet_aton(host))  # libc's parse of the legacy forms; no lookup
    except OSError:
        return None


def origin_of(url: str) -> str:
    parsed = httpx.URL(url)
    port = "" if parsed.port is None else f":{parsed.port}"  # httpx drops a scheme's default port
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    return f"{parsed.scheme}://{host}{port}"


def _host_key(url: httpx.URL) -> str:
    """Politeness is per host (its default ports together); a server on another port is another host."""
    port = url.port
    return url.host if port in (None, 80, 443) else f"{url.host}:{port}"


# -- politeness: one request at a time per host, a pause between two -------------------


class _OutOfTime(Exception):
    pass


@dataclass
class _Turn:
    lock: threading.Lock = field(default_factory=threading.Lock)
    last: float = float("-inf")  # time.monotonic() when the last request to the host ended


class _HostTurns:
    """Per host, shared by every job of the process: a request waits for the previous one and the delay."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._turns: dict[str, _Turn] = {}

    @contextmanager
    def turn(self, host: str, delay: float, deadline: float) -> Iterator[None]:
        with self._lock:
            turn = self._turns.setdefault(host, _Turn())
            if len(self._turns) > 10_000:  # forget hosts not visited for a while
                cutoff = time.monotonic() - 300
                for name in [n for n, t in self._turns.items() if t.last < cutoff and not t.lock.locked()]:
                    del self._turns[name]
                self._turns[host] = turn
        if not turn.lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise _OutOfTime(f"waited for {host} until the site's time ran out")
        try:
            wait = turn.last + delay - time.monotonic()
            if wait > 0:
                if time.monotonic() + wait >= deadline:
                    raise _OutOfTime(f"the pause before the next request to {host} would pass the site's time")
                time.sleep(wait)
            yield
        finally:
            turn.last = time.monotonic()
            turn.lock.release()


_turns = _HostTurns()
_robots_lock = threading.Lock()
_robots: TTLCache[str, Protego | None] = TTLCache(maxsize=10_000, ttl=ROBOTS_TTL_SECONDS)
# One robots.txt fetch per origin at a time (jobs crawling one site at once fetch it once); striped, so bounded.
_robots_fetching = tuple(threading.Lock() for _ in range(64))


def clear_caches() -> None:
    """Forget cached robots.txt files and host turns (tests)."""
    global _turns
    with _robots_lock:
        _robots.clear()
    _turns = _HostTurns()


# -- fetching ------------------------------------------------------------------------


class _Refused(Exception):
    """Nothing will be fetched from here, and trying again later will not change that."""


class _Unavailable(Exception):
    def __init__(self, kind: ProviderErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class _Disallowed(Exception):
    pass


@dataclass(frozen=True)
class _Page:
    url: str  # after redirects
    status: int
    content_type: str
    text: str
    truncated: bool


class _Crawler:
    def __init__(self, settings: Settings, network: SiteNetwork) -> None:
        self.settings = settings
        self.policy = Policy(allow_private=settings.allow_private_websites, resolver=network.resolver)
        self.inner = network.inner
        self.agent = user_agent(settings.user_agent, settings.contact_email)
        self.token = self.agent.split("/", 1)[0].split()[0] if self.agent.strip() else "ProspectPro"
        self.deadline = time.monotonic() + settings.website_site_timeout

    def left(self) -> float:
        return self.deadline - time.monotonic()

    # one request, no redirects followed ------------------------------------------
    def _request(
        self, url: httpx.URL, page_deadline: float, max_bytes: int, delay: float
    ) -> tuple[httpx.Response, bytes, bool]:
        with _turns.turn(_host_key(url), delay, page_deadline):
            left = page_deadline - time.monotonic()
            if left <= 0:
                raise _OutOfTime("no time left for the request")
            headers = {"User-Agent": self.agent, "Accept": _ACCEPT}
            with public_client(
                self.policy, timeout=left, budget_seconds=left, headers=headers, inner=self.inner
            ) as client:
                with client.stream("GET", url) as response:
                    body = bytearray()
                    truncated = False
                    if not response.is_redirect and response.status_code < 300:
                        for chunk in response.iter_bytes():
                            body.extend(chunk)
                            if len(body) >= max_bytes:  # stop reading: what is past the cap is never read
                                truncated = True
                                del body[max_bytes:]
                                break
                    return response, bytes(body), truncated

    def _checked(self, fn: Any) -> Any:
        try:
            return fn()
        except BlockedAddress as exc:
            raise _Refused(f"ssrf: {exc}") from None
        except InvalidInput as exc:
            raise _Refused(str(exc)) from None
        except (httpx.TimeoutException, httpcore.TimeoutException, _OutOfTime) as exc:
            raise _Unavailable(ProviderErrorKind.timeout, f"timed out ({exc})") from None
        except (httpx.HTTPError, httpcore.NetworkError, httpcore.ProtocolError, OSError) as exc:
            raise _Unavailable(ProviderErrorKind.unavailable, f"{type(exc).__name__}: {exc}") from None

    # robots.txt -----------------------------------------------------------------
    def robots(self, origin: str) -> Protego | None:
        """The origin's rules; None means everything is allowed (a 4xx robots.txt). _Unavailable for 5xx."""
        fetching = _robots_fetching[hash(origin) % len(_robots_fetching)]
        if not fetching.acquire(timeout=max(0.0, self.left())):
            raise _Unavailable(
                ProviderErrorKind.timeout, f"waited for robots.txt of {origin} until the site's time ran out"
            )
        try:
            with _robots_lock:
                if origin in _robots:
                    return _robots[origin]
            rules = self._fetch_robots(origin)
            with _robots_lock:
                _robots[origin] = rules
            return rules
        finally:
            fetching.release()

    def _fetch_robots(self, origin: str) -> Protego | None:
        url = httpx.URL(origin + "/robots.txt")
        page_deadline = min(self.deadline, time.monotonic() + self.settings.website_page_timeout)
        for _ in range(ROBOTS_MAX_REDIRECTS + 1):
            response, body, _truncated = self._checked(
                lambda u=url: self._request(u, page_deadline, ROBOTS_MAX_BYTES, self.settings.website_host_delay)
            )
            code = response.status_code
            if response.is_redirect:
                url = self._checked(
                    lambda r=response: parse_url(urljoin(str(r.url), r.headers["location"]), field="redirect")
                )
                continue
            if 200 <= code < 300:
                return Protego.parse(body.decode(response.charset_encoding or "utf-8", "replace"))
            if 400 <= code < 500:
                return None  # RFC 9309 §2.3.1.3: "unavailable": anything may be fetched
            raise _Unavailable(
                ProviderErrorKind.unavailable,
                f"robots.txt of {origin} answered HTTP {code}: nothing fetched (RFC 9309 §2.3.1.4)",
            )
        return None  # more redirects than five: RFC 9309 lets a crawler treat it as unavailable

    def allowed(self, url: httpx.URL) -> tuple[bool, float]:
        """(may fetch, the pause to keep before each request to its host)."""
        rules = self.robots(origin_of(str(url)))
        delay = self.settings.website_host_delay
        if rules is None:
            return True, delay
        crawl_delay = rules.crawl_delay(self.token)
        if crawl_delay:
            delay = max(delay, min(float(crawl_delay), MAX_CRAWL_DELAY))
        return rules.can_fetch(str(url), self.token), delay

    # one page, redirects followed by hand ------------------------------------------
    def get(self, raw_url: str) -> _Page:
        url = self._checked(lambda: parse_url(raw_url, field="website"))
        page_deadline = min(self.deadline, time.monotonic() + self.settings.website_page_timeout)
        for _ in range(self.settings.website_max_redirects + 1):
            may, delay = self.allowed(url)
            if not may:
                raise _Disallowed(f"robots.txt disallows {url}")
            response, body, truncated = self._checked(
                lambda u=url, d=delay: self._request(u, page_deadline, self.settings.website_max_bytes, d)
            )
            if response.is_redirect:
                target = urljoin(str(response.url), response.headers["location"])
                url = self._checked(lambda t=target: parse_url(t, field="redirect"))
                continue
            content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            encoding = response.charset_encoding or "utf-8"
            try:
                text = body.decode(encoding, "replace")
            except LookupError:
                text = body.decode("utf-8", "replace")
            return _Page(str(url), response.status_code, content_type, text, truncated)
        raise _Refused(f"more than {self.settings.website_max_redirects} redirects")


def _is_html(page: _Page) -> bool:
    return not page.content_type or page.content_type in _HTML_TYPES


def crawl(start: str, settings: Settings, network: SiteNetwork | None = None) -> SiteContacts:
    """Fetch and read one site (no ledger: ``find_contacts`` records this as one call)."""
    crawler = _Crawler(settings, network or _default_network)
    try:
        home = crawler.get(start)
    except _Refused as exc:
        return SiteContacts(site=start, refused=str(exc))
    except _Disallowed as exc:
        return SiteContacts(site=start, refused=str(exc))
    except _Unavailable as exc:
        raise ProviderError(PROVIDER, exc.kind, f"{start}: {exc}") from None
    if home.status >= 500:
        raise ProviderError(
            PROVIDER, ProviderErrorKind.unavailable, f"{start}: the homepage answered HTTP {home.status}"
        )
    if home.status >= 400:
        return SiteContacts(site=start, pages=(home.url,), refused=f"the homepage answered HTTP {home.status}")
    if not _is_html(home):
        return SiteContacts(site=start, pages=(home.url,), refused=f"the homepage is not HTML ({home.content_type})")

    country = _country_of(home.url)
    pages = [home]
    found = [extract(home.text, home.url, country=country)]
    queue = contact_links(found[0].links, home.url)
    tried = {home.url, start}
    while queue and len(pages) < settings.website_max_pages and crawler.left() > 0:
        url = queue.pop(0)
        if url in tried:
            continue
        tried.add(url)
        try:
            page = crawler.get(url)
        except (_Refused, _Disallowed, _Unavailable):
            continue  # this page only: the others may still be read
        if page.status >= 400 or not _is_html(page) or site_host(page.url) != site_host(home.url):
            continue
        pages.append(page)
        contacts = extract(page.text, page.url, country=country)
        found.append(contacts)
        queue.extend(u for u in contact_links(contacts.links, home.url, seen=sorted(tried)) if u not in queue)
    return _combine(start, home.url, pages, found)


def _country_of(url: str) -> str | None:
    """The site's country-code TLD, to read local phone numbers ("09 123 4567" on a .fi site)."""
    tld = (urlsplit(url).hostname or "").rsplit(".", 1)[-1]
    return tld.upper() if len(tld) == 2 and tld.isalpha() else None


def _combine(start: str, home_url: str, pages: list[_Page], found: list[Any]) -> SiteContacts:
    site_hosts = {urlsplit(start).hostname, urlsplit(home_url).hostname}
    best: dict[str, tuple[tuple[int, int, int], FoundEmail]] = {}
    phones: dict[str, str] = {}
    socials: dict[str, str] = {}
    for order, (page, contacts) in enumerate(zip(pages, found)):
        for email in contacts.emails:
            on_domain = any(is_on_domain(email.address, host) for host in site_hosts if host)
            where = 0 if on_domain else 1 if is_free_mail(email.address) else 2
            rank = (where, HOW_RANK[email.how], order)
            item = FoundEmail(email.address, page.url, email_kind(email.address), on_domain, email.how)
            if email.address not in best or rank < best[email.address][0]:
                best[email.address] = (rank, item)
        for number in contacts.phones:
            phones.setdefault(number, page.url)
        for profile in contacts.socials:
            socials.setdefault(profile, page.url)
    emails = tuple(item for _, item in sorted(best.values(), key=lambda pair: pair[0]))
    return SiteContacts(
        site=start,
        emails=emails,
        phones=tuple(phones.items()),
        socials=tuple(socials.items()),
        pages=tuple(p.url for p in pages),
    )
