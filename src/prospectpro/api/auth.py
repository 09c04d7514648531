"""Who is asking: an API key or a session token (Bearer header or cookie).

A request without credentials is anonymous; it gets a session only when it
needs one (submitting a campaign, opening the web page), so that reads by
strangers create nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio.to_thread
from fastapi import Request, Response

from prospectpro.api.limits import RateLimiter
from prospectpro.config import Settings
from prospectpro.errors import RateLimited, Unauthorized
from prospectpro.services.users import Principal, authenticate, create_session
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


def identify_now(request: Request, db: Database) -> Caller:
    """The caller, looked up in this thread (for handlers already off the event loop)."""
    token = _bearer(request)
    if token is not None:
        principal = authenticate(db, token)
        if principal is None:
            raise Unauthorized("unknown or revoked API key or session token")
        return Caller(principal)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        # A stale cookie is not an error: the caller just becomes anonymous again.
        return Caller(authenticate(db, cookie))
    return Caller(None)


async def identify(request: Request, db: Database) -> Caller:
    return await anyio.to_thread.run_sync(identify_now, request, db)


def ensure_session_now(
    caller: Caller, request: Request, db: Database, limiter: RateLimiter, label: str | None = None
) -> Caller:
    """The caller, or a new anonymous session for one who has none (bounded per client address)."""
    if caller.principal is not None:
        return caller
    client = request.client.host if request.client else "unknown"
    retry = limiter.hit(f"session:{client}")
    if retry:
        raise RateLimited("too many new sessions from this address; try again later", retry_after=retry)
    principal, token = create_session(db, label)
    return Caller(principal, new_session_token=token)


async def ensure_session(
    caller: Caller, request: Request, db: Database, limiter: RateLimiter, label: str | None = None
) -> Caller:
    return await anyio.to_thread.run_sync(lambda: ensure_session_now(caller, request, db, limiter, label))


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
