"""The ASGI application: API, web pages, and (optionally) in-process workers."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prospectpro import __version__
from prospectpro.api import ops, realtime, rest_compat, routes
from prospectpro.api.hub import EventHub
from prospectpro.bootstrap import build_worker, open_database
from prospectpro.config import Settings
from prospectpro.domain.campaign import validation_message
from prospectpro.errors import PayloadTooLarge, RateLimited, Unauthorized, UserError
from prospectpro.services.submitter import Submitter
from prospectpro.store.db import Database
from prospectpro.web import pages as web_pages

log = logging.getLogger(__name__)

_API_FIELD_NAMES = {
    "min_confidence_score": "minimum confidence score",
    "budget_limit": "budget limit",
    "businessType": "business type",
    "maxResults": "max results",
    "budgetLimit": "budget limit",
    "minConfidenceScore": "minimum confidence score",
}

_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 406: "not_acceptable"}


def error_response(request: Request, status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"error": {"code": code, "message": message, "details": details}}
    if request.url.path.startswith("/functions/"):
        body["success"] = False  # the original product's clients look at this
    return JSONResponse(body, status_code=status)


class BodySizeLimit:
    """Refuse bodies larger than the limit (413): by Content-Length up front,
    and by counting for a chunked body that has none."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._too_large(scope, receive, send)
            return
        if length is None and b"transfer-encoding" in dict(scope["headers"]):
            # Chunked: read it here, up to the limit, then hand it on. (An
            # error raised while the app reads would turn into a generic 400.)
            messages: list[Message] = []
            received = 0
            while True:
                message = await receive()
                messages.append(message)
                if message["type"] != "http.request":
                    break
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    await self._too_large(scope, receive, send)
                    return
                if not message.get("more_body", False):
                    break
            replay = iter(messages)

            async def replaying_receive() -> Message:
                return next(replay, None) or await receive()

            await self.app(scope, replaying_receive, send)
            return
        await self.app(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            Request(scope), 413, PayloadTooLarge.code, f"request body larger than {self.max_bytes} bytes"
        )
        await response(scope, receive, send)


class InternalErrors:
    """An error no handler answered: the JSON envelope with 500, logged with its traceback.

    Not ``@app.exception_handler(Exception)``: Starlette runs that one in its
    ServerErrorMiddleware, which re-raises after answering, and uvicorn then
    closes the connection, so a keep-alive client loses it. Here the error
    ends with the answer and the connection serves the client's next request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            if started:  # part of an answer is out: only closing the connection can tell the client
                raise
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            response = error_response(Request(scope), 500, "internal_error", "internal error; it has been logged")
            await response(scope, receive, send)


def app_from_env() -> FastAPI:
    """The app of one `serve --api-processes N` process (uvicorn calls this in each one)."""
    settings = Settings()
    return create_app(settings, workers=settings.serve_workers, freeze_gc=True)


def create_app(
    settings: Settings | None = None, *, workers: int = 0, db: Database | None = None, freeze_gc: bool = False
) -> FastAPI:
    """``freeze_gc``: for a process that is only this server (``serve``), see the lifespan."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = db or open_database(settings)
        hub = EventHub(database, poll_interval=settings.sse_poll_interval)
        await hub.start()
        app.state.db = database
        app.state.hub = hub
        app.state.submitter = Submitter(database, settings).start()
        worker = None
        if workers > 0:
            worker = build_worker(database, settings, workers).start()
        if freeze_gc:
            # What is loaded by now lives as long as the process. Moving it out
            # of the collector's reach makes a full collection scan only newer
            # objects: ~8 ms instead of ~100 ms, which stalled every request in flight.
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            app.state.submitter.stop()
            await hub.stop()
            if worker is not None:
                worker.stop()

    # FastAPIOffline: /docs served from the package, not from a CDN.
    app = FastAPIOffline(
        title="ProspectPro",
        version=__version__,
        description="Durable business-discovery campaigns with live progress.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(InternalErrors)  # added last: the outermost, so it sees every other layer's errors
    app.include_router(routes.router)
    app.include_router(ops.router)
    app.include_router(rest_compat.router)  # the original product's clients (issue 17)
    app.include_router(realtime.router)
    web_pages.mount(app)

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError) -> JSONResponse:
        response = error_response(request, exc.http_status, exc.code, exc.message, exc.details)
        if isinstance(exc, RateLimited) or getattr(exc, "retry_after", None) is not None:  # also a 503 (Nominatim)
            response.headers["Retry-After"] = str(exc.retry_after)  # type: ignore[attr-defined]
        elif isinstance(exc, Unauthorized):
            response.headers["WWW-Authenticate"] = 'Bearer realm="prospectpro"'  # RFC 9110 §11.6.1
        return response

    @app.exception_handler(OperationalError)
    async def database_unavailable(request: Request, exc: OperationalError) -> JSONResponse:
        # Restarting, unreachable or locked: the request did nothing and may be retried.
        log.warning("database unavailable during %s %s: %s", request.method, request.url.path, exc.orig)
        response = error_response(request, 503, "unavailable", "the database is unavailable; try again shortly")
        response.headers["Retry-After"] = "2"
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(request, 400, "bad_request", "request body is not valid JSON")
        for e in errors:  # "body.max_results" reads better as "max_results"
            loc = [p for p in e.get("loc", ()) if p not in ("body", "query", "path", "header")]
            e["loc"] = tuple(loc)
        details = [{"loc": list(e["loc"]), "msg": e.get("msg"), "type": e.get("type")} for e in errors]
        return error_response(request, 422, "invalid_input", validation_message(errors, _API_FIELD_NAMES), details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and web_pages.wants_html(request):  # a browser: the page, not JSON
            return web_pages.not_found(request, "page")
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = "not found" if exc.status_code == 404 else str(exc.detail)
        response = error_response(request, exc.status_code, code, message)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    _openapi_with_api_keys(app)
    return app


def _openapi_with_api_keys(app: FastAPI) -> None:
    """/docs gets an Authorize button for API keys (``Authorization: Bearer ppk_…``): a security scheme
    that every API operation accepts and none requires (without one, a caller is an anonymous session)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes["apiKey"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (`prospectpro users create NAME` prints one) or a session token.",
        }
        for path, operations in schema.get("paths", {}).items():
            if not path.startswith("/api/"):
                continue
            for operation in operations.values():
                if isinstance(operation, dict) and "security" not in operation:
                    operation["security"] = [{"apiKey": []}, {}]  # {}: anonymous is allowed too
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
