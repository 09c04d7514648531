"""Who is asking: an API key or a session token (Bearer header or cookie).

A request without credentials is anonymous; it gets a session only when it
needs one (submitting a campaign, opening the web page), so that reads by
strangers create nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio.to_thread
from fastapi import Request, Response

from prospectpro.config import Settings
from prospectpro.errors import Unauthorized
from prospectpro.services.users import Principal, authenticate, create_session, recently_authenticated
from prospectpro.store.db import Database

SESSION_COOKIE = "pp_session"


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
    """The caller's token and whether it came from the Authorization header."""
    token = _bearer(request)
    if token is not None:
        return token, True
    return request.cookies.get(SESSION_COOKIE) or None, False


def _caller(principal: Principal | None, from_header: bool) -> Caller:
    if principal is None and from_header:
        raise Unauthorized("unknown or revoked API key or session token")
    # A stale cookie is not an error: the caller just becomes anonymous again.
    return Caller(principal)


async def identify(request: Request, db: Database) -> Caller:
    """The caller: from the recent-token cache without a thread hop, else looked up in a worker thread."""
    token, from_header = _token(request)
    if token is None:
        return Caller(None)
    principal = recently_authenticated(db, token)
    if principal is None:
        principal = await anyio.to_thread.run_sync(authenticate, db, token)
    return _caller(principal, from_header)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


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
