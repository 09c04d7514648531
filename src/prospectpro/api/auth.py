"""Who is asking: an API key or a session token (Bearer header or cookie).

A request without credentials is anonymous; it gets a session only when it
needs one (submitting a campaign, opening the web page), so that reads by
strangers create nothing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio.to_thread
from fastapi import Request, Response

from prospectpro.config import Settings
from prospectpro.errors import Forbidden, Unauthorized
from prospectpro.services.users import Principal, authenticate, create_session, recently_authenticated
from prospectpro.store.db import Database

SESSION_COOKIE = "pp_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Headers a reverse proxy adds: a request carrying one did not come from this machine, whatever the peer.
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


@dataclass
class Caller:
    principal: Principal | None
    new_session_token: str | None = None

    @property
    def owner_id(self) -> str | None:
        return self.principal.user_id if self.principal else None


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization must be 'Bearer <api key or session token>'")
    return token.strip()


def _token(request: Request) -> tuple[str | None, bool]:
    """The caller's token and whether it came from a header (Authorization, else ``apikey``:
    supabase-js and the original product's scripts send the key there too; a browser never adds it on its own)."""
    token = _bearer(request) or (request.headers.get("apikey") or "").strip() or None
    if token is not None:
        return token, True
    return request.cookies.get(SESSION_COOKIE) or None, False


def _caller(principal: Principal | None, from_header: bool) -> Caller:
    if principal is None and from_header:
        raise Unauthorized("unknown or revoked API key or session token")
    # A stale cookie is not an error: the caller just becomes anonymous again.
    return Caller(principal)


def cross_origin(request: Request) -> bool:
    """Whether a browser sent this request for a page of another origin, same-site ones included
    (a sibling subdomain: the SameSite=Lax cookie goes along). Sec-Fetch-Site says so where browsers
    send it; else Origin, compared with this server's own origin. No header at all: not a browser."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site.lower() not in ("same-origin", "none")  # none: the user's own navigation
    origin = request.headers.get("origin")
    if origin is None:
        return False
    netloc = urlsplit(origin).netloc.lower()
    ours = {request.headers.get("host", "").lower()}
    public = request.app.state.settings.public_base_url
    if public:
        ours.add(urlsplit(public).netloc.lower())
    return origin == "null" or not netloc or netloc not in ours


async def identify(request: Request, db: Database) -> Caller:
    """The caller: from the recent-token cache without a thread hop, else looked up in a worker thread.

    A change (POST) authenticated by the cookie must come from this site's own pages: a browser
    attaches the cookie to a form or fetch sent by another origin of the same site, too. A Bearer
    token is never sent by a browser on its own, so it needs no such check."""
    token, from_header = _token(request)
    if token is None:
        return Caller(None)
    if not from_header and request.method not in SAFE_METHODS and cross_origin(request):
        raise Forbidden("a change by cookie must come from this site's pages; other clients send Authorization: Bearer")
    principal = recently_authenticated(db, token)
    if principal is None:
        principal = await anyio.to_thread.run_sync(authenticate, db, token)
    return _caller(principal, from_header)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def local_client(request: Request) -> bool:
    """A caller on this machine: a loopback peer, and no proxy in between (a proxy on this machine
    would make every client of the internet look local)."""
    if any(name in request.headers for name in FORWARDING_HEADERS):
        return False
    try:
        return ipaddress.ip_address(client_address(request)).is_loopback
    except ValueError:
        return False


async def ensure_session(caller: Caller, request: Request, db: Database, settings: Settings) -> Caller:
    """The caller, or a new anonymous session for one who has none (a bounded number per client address)."""
    if caller.principal is not None:
        return caller
    limit = (client_address(request), settings.sessions_per_minute)
    principal, token = await anyio.to_thread.run_sync(lambda: create_session(db, limit=limit))
    return Caller(principal, new_session_token=token)


def set_session_cookie(response: Response, caller: Caller, settings: Settings) -> None:
    if caller.new_session_token:
        response.set_cookie(
            SESSION_COOKIE,
            caller.new_session_token,
            max_age=60 * 60 * 24 * 365,
            httponly=True,
            samesite="lax",
            secure=settings.cookie_secure,
            path="/",
        )


def session_token(request: Request) -> str | None:
    """The session token of the browser's cookie (what signing out revokes)."""
    return request.cookies.get(SESSION_COOKIE) or None


def set_signed_in_cookie(response: Response, token: str, settings: Settings) -> None:
    """The cookie of a user signed in on the web with an API key: a session token of that user, HttpOnly
    and SameSite=Lax like the anonymous one (a form post by it is checked for its origin by ``identify``)."""
    set_session_cookie(response, Caller(None, new_session_token=token), settings)


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=settings.cookie_secure)
