"""Business websites, simulated: many sites on one local server, told apart by the Host header.

``install(sim)`` starts the sites' own server (stopped with ``sim``), adds the
catalogue below and makes it the network ``providers.website.find_contacts``
uses: names of the sites resolve through an injected resolver (never real DNS),
and every connection is carried to the local server and recorded. So:

- a site added normally is ``http://NAME:PORT/`` on 127.0.0.1: reachable only
  with ``allow_private_websites`` on (loopback, another port), as the issue
  says the tests' sites run;
- a site added with ``public=True`` is ``http://NAME/`` resolving to
  ``PUBLIC_ADDRESS``: the SSRF check sees a public address on port 80, the
  bytes still arrive here — so tests with the allow setting off can be served
  by a "public" page and see that a refused hop sent nothing (``connections``,
  ``count``).

The catalogue (names in ``CATALOGUE``): contact pages linked from homepages,
``mailto:`` links, obfuscated and Cloudflare-protected addresses, false-positive
bait, a robots.txt that disallows the contact page (for our product token), one
that answers 503, redirects (one to a private address), a slow and an
oversized page.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpcore

from prospectpro.providers import website
from tests.sim.server import SimRequest, SimResponse, Simulator

PUBLIC_ADDRESS = "93.184.215.14"  # looks public to the SSRF check; carried to the local server

Page = SimResponse | str | Callable[[SimRequest], SimResponse]


def cf_encode(address: str, key: int = 0x5A) -> str:
    """Cloudflare's e-mail protection encoding: the key byte, then every byte XOR the key, as hex."""
    return f"{key:02x}" + "".join(f"{b ^ key:02x}" for b in address.encode())


def html(body: str, title: str = "") -> str:
    return f"<!doctype html><html><head><title>{title}</title></head><body>{body}</body></html>"


def redirect(location: str, status: int = 302) -> SimResponse:
    return SimResponse(status, "", headers={"Location": location})


@dataclass
class Site:
    name: str
    pages: dict[str, Page]
    robots: Page | None = None  # None: 404, i.e. everything allowed
    public: bool = False


@dataclass
class SitesSim:
    server: Simulator
    sites: dict[str, Site] = field(default_factory=dict)
    # Other names the resolver knows (e.g. a redirect target "intranet.fi" → "127.0.0.1").
    names: dict[str, list[str]] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)
    connections: list[tuple[str, int]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- sites ------------------------------------------------------------------------
    def add(self, name: str, pages: dict[str, Page], robots: Page | None = None, *, public: bool = False) -> str:
        self.sites[name] = Site(name, pages, robots, public)
        return self.url(name)

    def add_business(
        self,
        name: str,
        *,
        email: str | None = None,
        phone: str | None = None,
        contact_path: str = "/contact",
        home_email: str | None = None,
        public: bool = False,
    ) -> str:
        """A typical small business site: a homepage linking to a contact page with a mailto link."""
        home = html(
            f'<h1>{name}</h1><nav><a href="/">Home</a> <a href="{contact_path}">Contact</a> <a href="/menu">Menu</a></nav>'
            + (f"<footer>{home_email}</footer>" if home_email else ""),
            name,
        )
        contact = html(
            (f'<a href="mailto:{email}?subject=Hello">{email}</a>' if email else "")
            + (f' <a href="tel:{phone}">{phone}</a>' if phone else ""),
            "Contact",
        )
        return self.add(name, {"/": home, contact_path: contact, "/menu": html("<p>Coffee 3 €</p>")}, public=public)

    def url(self, name: str, path: str = "/") -> str:
        if self.sites.get(name) is not None and self.sites[name].public:
            return f"http://{name}{path}"
        return f"http://{name}:{self.server.port}{path}"

    # -- what they saw ------------------------------------------------------------------
    def calls(self, name: str | None = None, path: str | None = None) -> list[SimRequest]:
        return [
            c
            for c in self.server.calls_to("/")
            if (name is None or _host_of(c) == name) and (path is None or c.path == path)
        ]

    def count(self, name: str | None = None, path: str | None = None) -> int:
        return len(self.calls(name, path))

    def paths(self, name: str) -> list[str]:
        return [c.path for c in self.calls(name)]

    # -- serving ------------------------------------------------------------------------
    def _serve(self, request: SimRequest) -> SimResponse:
        site = self.sites.get(_host_of(request))
        if site is None:
            return SimResponse(404, html("<p>no such site</p>"))
        page = site.robots if request.path == "/robots.txt" else site.pages.get(request.path)
        if page is None:
            return SimResponse(404, html("<p>not found</p>"))
        if callable(page):
            return page(request)
        if isinstance(page, str):
            content_type = "text/plain" if request.path == "/robots.txt" else "text/html; charset=utf-8"
            return SimResponse(200, page, headers={"Content-Type": content_type})
        return page

    # -- the network find_contacts uses -----------------------------------------------------
    def resolve(self, host: str, port: int) -> Sequence[str]:
        with self._lock:
            self.lookups.append(host)
        site = self.sites.get(host)
        if site is not None:
            return [PUBLIC_ADDRESS if site.public else "127.0.0.1"]
        if host in self.names:
            return self.names[host]
        raise OSError(f"{host} does not resolve (simulated DNS)")

    def network(self) -> website.SiteNetwork:
        return website.SiteNetwork(resolver=self.resolve, inner=_Carrier(self))


class _Carrier(httpcore.NetworkBackend):
    """The socket layer under the SSRF check: records each connection and carries it to the sites' server."""

    def __init__(self, sites: SitesSim) -> None:
        self.sites = sites
        self.real = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, **kwargs: Any) -> httpcore.NetworkStream:
        with self.sites._lock:
            self.sites.connections.append((host, port))
        return self.real.connect_tcp("127.0.0.1", self.sites.server.port, timeout=timeout, **kwargs)


def _host_of(request: SimRequest) -> str:
    host = request.headers.get("host", "")
    if host.startswith("["):
        return host[1 : host.index("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


# -- the catalogue ---------------------------------------------------------------------------

CATALOGUE = (
    "cafe-engel.fi",
    "bistro-nord.fi",
    "salon-aurora.fi",
    "kirjakauppa-lehto.fi",
    "parturi-sakset.fi",
    "hammas-klinikka.fi",
    "kukka-kauppa.fi",
    "kierre.fi",
    "hotelli-ranta.fi",
    "hidas-kahvila.fi",
    "iso-sivu.fi",
    "tekniikka-oy.fi",
)
BIG_PAGE_BYTES = 3 * 1024 * 1024


def _catalogue(sites: SitesSim) -> None:
    # A homepage linking to its contact and about pages; a menu page that is not worth fetching.
    sites.add(
        "cafe-engel.fi",
        {
            "/": html(
                '<nav><a href="/">Etusivu</a> <a href="/menu">Menu</a> <a href="/meista">Meistä</a>'
                ' <a href="/yhteystiedot">Yhteystiedot</a></nav>'
                '<a href="https://www.facebook.com/cafeengel/">Facebook</a>'
                '<a href="https://instagram.com/cafe.engel?hl=fi">Instagram</a>'
                '<a href="https://www.facebook.com/sharer/sharer.php?u=https://cafe-engel.fi">Jaa</a>'
                '<a href="https://other-site.fi/contact">Kumppanit</a>',
                "Café Engel",
            ),
            "/yhteystiedot": html(
                '<p>Varaukset: <a href="mailto:Info%40Cafe-Engel.fi?subject=Varaus&amp;body=Hei">sähköposti</a></p>'
                '<p>Puhelin <a href="tel:+358 9 652 776">09 652 776</a></p>'
                "<p>Omistaja Anna Virtanen, anna.virtanen@cafe-engel.fi</p>",
                "Yhteystiedot",
            ),
            "/meista": html("<p>Since 1987. Write to engelcafe@gmail.com.</p>", "Meistä"),
            "/menu": html("<p>menu@cafe-engel.fi</p>"),
        },
    )
    # Hand-obfuscated addresses.
    sites.add(
        "bistro-nord.fi",
        {
            "/": html('<a href="/contact-us">Contact us</a>'),
            "/contact-us": html(
                "<p>info [at] bistro-nord [dot] fi</p><p>myynti(at)bistro-nord.fi</p>"
                "<p>Sales: sales at bistro-nord dot fi</p><p>varaus&#64;bistro-nord&#46;fi</p>"
                "<p>tilaus%40bistro-nord.fi</p><p>We are open at noon.</p>"
            ),
        },
    )
    # Cloudflare's e-mail protection, both forms.
    sites.add(
        "salon-aurora.fi",
        {
            "/": html(
                f'<a href="/cdn-cgi/l/email-protection#{cf_encode("ajanvaraus@salon-aurora.fi")}">'
                '<span class="__cf_email__">[email&#160;protected]</span></a>'
                f'<p>Owner: <span class="__cf_email__" data-cfemail="{cf_encode("maria@salon-aurora.fi", 0x21)}">'
                "[email&#160;protected]</span></p>"
            )
        },
    )
    # False-positive bait around one real address.
    sites.add(
        "kirjakauppa-lehto.fi",
        {
            "/": html(
                '<img src="/img/logo@2x.png" alt="logo@2x.png"><p>logo@2x.png banner@3x.webp</p>'
                "<p>8f3a9b2c4d5e6f708192a3b4c5d6e7f8@sentry.wixpress.com "
                "a1b2c3d4e5f6a7b8c9d0@o123456.ingest.sentry.io</p>"
                "<p>john.doe@example.com your.name@yourdomain.com noreply@kirjakauppa-lehto.fi</p>"
                f"<p>{'x' * 60}@kirjakauppa-lehto.fi</p>"
                "<p>Ota yhteyttä: hello@kirjakauppa-lehto.fi</p>"
                '<script>var support = "script@kirjakauppa-lehto.fi";</script>'
            )
        },
    )
    # robots.txt disallows the contact page, for our product token only.
    sites.add(
        "parturi-sakset.fi",
        {
            "/": html('<a href="/contact">Contact</a> <a href="/about">About</a>'),
            "/contact": html('<a href="mailto:secret@parturi-sakset.fi">mail</a>'),
            "/about": html("<p>info@parturi-sakset.fi</p>"),
        },
        robots="User-agent: Googlebot\nDisallow: /\n\nUser-agent: ProspectPro\nDisallow: /contact\n\nUser-agent: *\nAllow: /\n",
    )
    # robots.txt answers 503: nothing on the site may be fetched.
    sites.add(
        "hammas-klinikka.fi",
        {"/": html('<a href="/contact">Contact</a>'), "/contact": html("<p>info@hammas-klinikka.fi</p>")},
        robots=SimResponse(503, "busy", headers={"Content-Type": "text/plain"}),
    )
    # Redirects: the homepage moves to /fi/, its contact link moves again.
    sites.add(
        "kukka-kauppa.fi",
        {
            "/": redirect("/fi/", 301),
            "/fi/": html('<a href="/fi/kontakt">Kontakt</a>'),
            "/fi/kontakt": redirect("/fi/yhteystiedot"),
            "/fi/yhteystiedot": html('<a href="mailto:tilaukset@kukka-kauppa.fi">tilaukset</a>'),
        },
    )
    # A redirect loop.
    sites.add("kierre.fi", {"/": redirect("/a"), "/a": redirect("/b"), "/b": redirect("/a")})
    # A "public" hotel page whose contact link redirects into the private network.
    sites.add(
        "hotelli-ranta.fi",
        {
            "/": html('<a href="/contact">Contact</a><p>reception@hotelli-ranta.fi</p>'),
            "/contact": redirect("http://intranet.hotelli-ranta.fi/contact"),
            "/admin": redirect("http://169.254.169.254/latest/meta-data/"),
        },
        public=True,
    )
    sites.names["intranet.hotelli-ranta.fi"] = ["10.0.0.7"]
    sites.names["private.example.fi"] = ["192.168.1.20"]
    # Slow and oversized pages.
    sites.add(
        "hidas-kahvila.fi",
        {
            "/": html('<a href="/contact">Contact</a><p>hei@hidas-kahvila.fi</p>'),
            "/contact": SimResponse(200, html("<p>slow@hidas-kahvila.fi</p>"), delay=3.0),
        },
    )
    big = "<p>first@iso-sivu.fi</p>" + "<p>" + "lorem ipsum " * (BIG_PAGE_BYTES // 12) + "</p><p>last@iso-sivu.fi</p>"
    sites.add("iso-sivu.fi", {"/": html(big)})
    # More contact-ish pages than the cap, a PDF and a team page.
    sites.add(
        "tekniikka-oy.fi",
        {
            "/": html(
                '<a href="/privacy">Privacy</a> <a href="/team">Our team</a> <a href="/about">About us</a>'
                ' <a href="/impressum">Impressum</a> <a href="/contact">Contact</a> <a href="/brochure.pdf">Contact PDF</a>'
            ),
            "/contact": html('<a href="mailto:office@tekniikka-oy.fi">office</a>'),
            "/impressum": html("<p>Tekniikka Oy, ceo: matti.meikalainen@tekniikka-oy.fi</p>"),
            "/about": html("<p>about@tekniikka-oy.fi</p>"),
            "/team": html("<p>liisa@tekniikka-oy.fi</p>"),
            "/privacy": html("<p>privacy@tekniikka-oy.fi</p>"),
            "/brochure.pdf": SimResponse(200, b"%PDF-1.4", headers={"Content-Type": "application/pdf"}),
        },
    )


def install(sim: Simulator, *, catalogue: bool = True, latency: float = 0.0) -> SitesSim:
    """Start the sites' server (stopped with ``sim``) and route ``find_contacts`` to it until then."""
    server = Simulator()
    # Started here rather than by start(): a short poll interval makes stopping it (every test's teardown) quick.
    threading.Thread(
        target=server._server.serve_forever, kwargs={"poll_interval": 0.05}, name="sites", daemon=True
    ).start()
    sites = SitesSim(server)
    server.route("GET", "/", sites._serve, prefix=True)
    server.route("HEAD", "/", sites._serve, prefix=True)
    if latency:
        server.set_latency("/", latency)
    if catalogue:
        _catalogue(sites)
    website.clear_caches()
    previous = website.set_default_network(sites.network())

    def stop() -> None:
        website.set_default_network(previous)
        website.clear_caches()
        server.stop()

    sim.on_stop(stop)
    return sites


# -- helpers for the tests that fetch these sites ---------------------------------------------


def site_settings(**changes: Any) -> Any:
    """Settings for fetching the simulated sites: loopback allowed, no politeness pause, short caps."""
    from prospectpro.config import Settings

    values: dict[str, Any] = {
        "import_bundled_places": False,
        "allow_private_websites": True,
        "website_host_delay": 0.0,
        "website_page_timeout": 2.0,
        "website_site_timeout": 5.0,
        "website_max_bytes": 256 * 1024,
    }
    values.update(changes)
    return Settings(**values)


def call_context(gate: Any = None, *, owner_id: str | None = None, job_id: str | None = None) -> Any:
    """A CallContext for the website step (the pass-through gate unless one is given)."""
    import uuid
    from decimal import Decimal

    from prospectpro.domain.campaign import Tier
    from prospectpro.providers.protocols import PASS_THROUGH, CallContext
    from prospectpro.store.schema import LOCAL_USER_ID

    return CallContext(
        job_id=job_id or str(uuid.uuid4()),
        owner_id=owner_id or LOCAL_USER_ID,
        tier=Tier.base,
        wanted=1,
        budget_limit=Decimal("0"),
        gate=gate or PASS_THROUGH,
    )
