"""The JSON API under /api/v1 and the original product's compatibility endpoint."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import anyio.to_thread
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from prospectpro.api import schemas
from prospectpro.api.auth import Caller, client_address, identify, set_session_cookie
from prospectpro.api.hub import EventHub
from prospectpro.api.stream import job_stream
from prospectpro.config import Settings
from prospectpro.domain.campaign import CampaignRequest
from prospectpro.domain.status import JobStatus
from prospectpro.domain.text import parse_id
from prospectpro.errors import NotFound, RateLimited, Unauthorized, UnsupportedMediaType
from prospectpro.jobs import queue
from prospectpro.jobs.model import Job
from prospectpro.net import Policy, resolve_public
from prospectpro.providers.nominatim import ensure_geocoded
from prospectpro.services import campaigns as campaign_service
from prospectpro.services import privacy
from prospectpro.services import quote as quote_service
from prospectpro.services.export import XLSX_MEDIA_TYPE, leads_csv, leads_xlsx, load_export
from prospectpro.services.submissions import (
    IDEMPOTENCY_KEY_MAX_LENGTH,
    IDEMPOTENCY_KEY_PATTERN,
    Submission,
    SubmitRequest,
    check_idempotency_key,
)
from prospectpro.store.db import Database
from prospectpro.store.prune import check_events_readable

router = APIRouter()

MAX_SEQ = 2**31 - 1  # event sequence numbers are 32-bit in the store


@dataclass
class Ctx:
    settings: Settings
    db: Database
    hub: EventHub
    caller: Caller

    @property
    def owner_id(self) -> str:
        """The caller's id; a caller without one owns nothing, so lookups are 404."""
        return self.caller.owner_id or "-"


async def ctx(request: Request) -> Ctx:
    state = request.app.state
    return Ctx(state.settings, state.db, state.hub, await identify(request, state.db))


async def require_json(request: Request) -> None:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json" and not kind.endswith("+json"):
        raise UnsupportedMediaType("send the request body as application/json")


Context = Annotated[Ctx, Depends(ctx)]

_ID_SCHEMA = {"format": "uuid"}


def _job_id(job_id: Annotated[str, Path(json_schema_extra=_ID_SCHEMA)]) -> str:
    """Ids are UUIDs: anything else (say, "%00", which PostgreSQL would refuse) names no job."""
    found = parse_id(job_id)
    if found is None:
        raise NotFound("job not found")
    return found


def _campaign_id(campaign_id: Annotated[str, Path(json_schema_extra=_ID_SCHEMA)]) -> str:
    found = parse_id(campaign_id)
    if found is None:
        raise NotFound("campaign not found")
    return found


def _campaign_not_quote(campaign_id: Annotated[str, Path(json_schema_extra=_ID_SCHEMA)]) -> str:
    """GET /campaigns/{id} would also match /campaigns/quote, which takes only POST: that is a 405, not a 404."""
    if campaign_id == "quote":
        raise StarletteHTTPException(405, "Method Not Allowed", headers={"Allow": "POST"})
    return _campaign_id(campaign_id)


JobId = Annotated[str, Depends(_job_id)]
CampaignId = Annotated[str, Depends(_campaign_id)]


_HOST = re.compile(r"(?:[a-z0-9.-]+|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?")


def public_base(request: Request) -> str:
    """How clients reach this server, for the URLs it answers with. The Host header is the client's
    word: reflected as is, a crafted request gets links to anywhere (for whoever follows them later).
    So: the configured PROSPECTPRO_PUBLIC_BASE_URL; else the request's own base when its host is an
    allowed one or the address the connection reached; else none, and the URLs are relative."""
    settings: Settings = request.app.state.settings
    if settings.public_base_url:
        return settings.public_base_url  # validated, without a trailing slash
    header = request.headers.get("host", "").lower()
    if not _HOST.fullmatch(header):
        return ""
    host = urlsplit(f"//{header}").hostname or ""
    allowed = {name.lower().strip("[]") for name in settings.allowed_hosts}
    server = request.scope.get("server")
    if "*" in allowed or host in allowed or (server is not None and host == str(server[0]).lower()):
        return f"{request.url.scheme}://{header}"
    return ""


def links(request: Request, job_id: str, campaign_id: str) -> schemas.Links:
    base = public_base(request)
    return schemas.Links(
        job=f"{base}/api/v1/jobs/{job_id}",
        events=f"{base}/api/v1/jobs/{job_id}/events",
        leads=f"{base}/api/v1/campaigns/{campaign_id}/leads",
        leads_csv=f"{base}/api/v1/campaigns/{campaign_id}/leads.csv",
        page=f"{base}/jobs/{job_id}",
    )


async def submit(
    request: Request,
    response: Response,
    body: CampaignRequest,
    *,
    idempotency_key: str | None,
    notify_url: str | None = None,
    label: str | None = None,
) -> Submission:
    """Identify, check the webhook address, then hand the campaign to the group-commit writer
    (which validates it before opening a session for an anonymous caller, so a rejected
    request opens none)."""
    state = request.app.state
    settings: Settings = state.settings
    caller = await identify(request, state.db)
    if notify_url:  # resolving the host name is network I/O: not on the event loop
        # The sender's own parser and address policy, so what is accepted here can be sent.
        await anyio.to_thread.run_sync(
            lambda: resolve_public(notify_url, Policy(allow_private=settings.allow_private_notify_urls))
        )
    # A place neither the local data nor the geocode cache knows is looked up now, before the group
    # writer (which reads only the store): no transaction waits on Nominatim. 503 when it cannot answer.
    await anyio.to_thread.run_sync(lambda: ensure_geocoded(state.db, settings, None, body.location))
    submission: Submission = await state.submitter.submit(
        SubmitRequest(
            body,
            owner_id=caller.owner_id,
            session_label=label,
            notify_url=notify_url,
            idempotency_key=idempotency_key,
            per_minute=settings.submissions_per_minute,
            session_limit=None if caller.owner_id else (client_address(request), settings.sessions_per_minute),
            anonymous=_anonymous(caller),
        )
    )
    if submission.session:
        set_session_cookie(response, Caller(*submission.session), settings)
    return submission


def _anonymous(caller: Caller) -> bool:
    """Whether the caller is an anonymous session (or none yet): such callers use the base tier only."""
    return caller.principal is None or caller.principal.kind == "anonymous"


@router.post(
    "/api/v1/campaigns/quote",
    response_model=schemas.QuoteOut,
    responses=schemas.errors(400, 401, 403, 413, 415, 422, 503),
    dependencies=[Depends(require_json)],
    tags=["campaigns"],
)
async def quote_campaign(payload: schemas.CampaignIn, c: Context) -> dict[str, Any]:
    """What a campaign with this body would use and spend, at most and usually; it enqueues nothing
    and opens no session. The same checks as a submission: a 403 for a paid tier without an API key,
    a 422 for a source the tier or this installation cannot use, or a paid one its budget cannot pay."""
    body = payload.to_request()
    await anyio.to_thread.run_sync(lambda: ensure_geocoded(c.db, c.settings, None, body.location))
    found = await anyio.to_thread.run_sync(
        lambda: quote_service.quote(c.db, c.settings, c.caller.owner_id, body, anonymous=_anonymous(c.caller))
    )
    return found.to_dict()


async def idempotency_key(  # async: checked on the event loop, no thread hop
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Retrying with the same key (and body) returns the first job instead of a new one",
            # Documented here, checked by the service's one rule (a 422 with a message that says it).
            json_schema_extra={"minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX_LENGTH, "pattern": IDEMPOTENCY_KEY_PATTERN},
        ),
    ] = None,
) -> str | None:
    """Both submit endpoints' Idempotency-Key: absent, or 1–N visible ASCII characters (an empty one is refused)."""
    return None if key is None else check_idempotency_key(key)


IdempotencyKey = Annotated[str | None, Depends(idempotency_key)]


@router.post(
    "/api/v1/campaigns",
    status_code=202,
    response_model=schemas.SubmitOut,
    responses=schemas.errors(400, 401, 403, 409, 413, 415, 422, 429, 503),
    dependencies=[Depends(require_json)],
    tags=["campaigns"],
)
async def create_campaign(
    payload: schemas.CampaignIn, request: Request, response: Response, idempotency_key: IdempotencyKey = None
) -> schemas.SubmitOut:
    """Submit a campaign: one short transaction, answered at once with the job to watch."""
    submission = await submit(
        request,
        response,
        payload.to_request(),
        idempotency_key=idempotency_key,
        notify_url=payload.notify_url,
    )
    response.headers["Location"] = f"/api/v1/jobs/{submission.job.id}"
    return schemas.SubmitOut(
        job_id=submission.job.id,
        campaign_id=submission.campaign_id,
        status=submission.job.status.value,
        urls=links(request, submission.job.id, submission.campaign_id),
        created=submission.created,
        session_token=submission.session_token,
        notify_secret=submission.notify_secret,
    )


@router.get("/api/v1/jobs", response_model=schemas.JobPage, responses=schemas.errors(401, 422), tags=["jobs"])
async def list_jobs(
    c: Context,
    status: JobStatus | None = None,
    kind: Annotated[
        str, Query(pattern=r"^[a-z][a-z0-9_]{0,31}$", description="Which kind of job (campaign by default)")
    ] = "campaign",
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    """The caller's jobs of one kind, newest first."""
    jobs, total = await anyio.to_thread.run_sync(
        lambda: queue.list_jobs(c.db, c.owner_id, kind=kind, status=status, limit=limit, offset=offset)
    )
    return {"jobs": [j.to_public() for j in jobs], "total": total, "limit": limit, "offset": offset}


async def owned_job(c: Ctx, job_id: str) -> Job:
    return await anyio.to_thread.run_sync(lambda: queue.get_job(c.db, job_id, c.owner_id))


@router.get("/api/v1/jobs/{job_id}", response_model=schemas.JobOut, responses=schemas.errors(401, 404), tags=["jobs"])
async def get_job(job_id: JobId, c: Context) -> dict[str, Any]:
    return (await owned_job(c, job_id)).to_public()


@router.post(
    "/api/v1/jobs/{job_id}/cancel",
    status_code=202,
    response_model=schemas.JobOut,
    responses=schemas.errors(401, 403, 404),
    tags=["jobs"],
)
async def cancel_job(job_id: JobId, c: Context) -> dict[str, Any]:
    """Cancel: at once if no worker holds the job, else at its next checkpoint (leads so far are kept)."""
    job = await anyio.to_thread.run_sync(lambda: queue.request_cancel(c.db, job_id, c.owner_id))
    return job.to_public()


def _last_event_id(value: str | None) -> int | None:
    """The resume position a reconnecting client sent, or None. The SSE standard lets Last-Event-ID
    be any string; one that is not a sequence number this stream could have sent ("null", say,
    from a client that stored nothing) is no position, not an error."""
    text = (value or "").strip()
    if not text.isascii() or not text.isdigit():
        return None
    return min(int(text), MAX_SEQ)  # past the last event there is nothing more, however far


@router.get(
    "/api/v1/jobs/{job_id}/events",
    response_model=None,
    responses={
        200: {
            "description": "The job's events: a text/event-stream (a snapshot, then each event with `id:` = its seq), "
            "or with format=json a page of them",
            "model": schemas.EventPage,
            "content": {"text/event-stream": schemas.EVENT_STREAM},
        },
        204: {"description": "Reconnected to a finished job: nothing more will come"},
        **schemas.errors(401, 404, 422, 429),
    },
    tags=["jobs"],
)
async def job_events(
    job_id: JobId,
    c: Context,
    format: Literal["sse", "json"] = "sse",
    after: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", description="Resume after this event (any other value: from the start)"),
    ] = None,
) -> Response:
    job = await owned_job(c, job_id)
    resume = _last_event_id(last_event_id)
    # A browser reconnecting to a URL with ?after=N also sends Last-Event-ID: the later position wins.
    position = max(after or 0, resume or 0)
    await anyio.to_thread.run_sync(check_events_readable, c.db, job, position)  # 410 once retention pruned them
    if format == "json":
        events = await anyio.to_thread.run_sync(lambda: queue.list_events(c.db, job_id, after=position, limit=limit))
        next_after = events[-1].seq if events else position
        return JSONResponse({"events": [e.to_public() for e in events], "next_after": next_after})
    if resume is not None and job.status.terminal and position >= job.event_seq:
        return Response(status_code=204)  # tells EventSource to stop reconnecting
    if c.hub.streams_of(c.owner_id) >= c.settings.streams_per_owner:
        raise RateLimited(f"at most {c.settings.streams_per_owner} open event streams per caller", retry_after=5)
    stream = job_stream(c.hub, job, c.owner_id, position, c.settings.sse_keepalive_seconds)
    return EventSourceResponse(stream, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get(
    "/api/v1/campaigns/{campaign_id}",
    response_model=schemas.CampaignOut,
    responses=schemas.errors(401, 404),
    tags=["campaigns"],
)
async def get_campaign(campaign_id: Annotated[str, Depends(_campaign_not_quote)], c: Context) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(lambda: campaign_service.get_campaign(c.db, campaign_id, c.owner_id))


@router.get(
    "/api/v1/campaigns/{campaign_id}/leads",
    response_model=schemas.LeadPage,
    responses=schemas.errors(401, 404, 422),
    tags=["campaigns"],
)
async def get_leads(
    campaign_id: CampaignId,
    c: Context,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    leads, total = await anyio.to_thread.run_sync(
        lambda: campaign_service.list_leads(c.db, campaign_id, c.owner_id, limit=limit, offset=offset)
    )
    return {"leads": leads, "total": total, "limit": limit, "offset": offset}


@router.get(
    "/api/v1/campaigns/{campaign_id}/leads.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}, **schemas.errors(401, 404)},
    tags=["campaigns"],
)
async def get_leads_csv(campaign_id: CampaignId, c: Context) -> Response:
    data = await anyio.to_thread.run_sync(lambda: load_export(c.db, campaign_id, c.owner_id))
    return Response(
        leads_csv(data).encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="leads-{campaign_id}.csv"'},
    )


@router.get(
    "/api/v1/campaigns/{campaign_id}/leads.xlsx",
    response_class=Response,
    responses={
        200: {"content": {XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}},
        **schemas.errors(401, 404),
    },
    tags=["campaigns"],
)
async def get_leads_xlsx(campaign_id: CampaignId, c: Context) -> Response:
    """The same columns as leads.csv in an Excel workbook: typed cells, the header row frozen, filters on."""
    body = await anyio.to_thread.run_sync(lambda: leads_xlsx(load_export(c.db, campaign_id, c.owner_id)))
    return Response(
        body,
        media_type=XLSX_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="leads-{campaign_id}.xlsx"'},
    )


def _owner(c: Ctx) -> str:
    if c.caller.owner_id is None:
        raise Unauthorized("the suppression list and forget need an API key or a session")
    return c.caller.owner_id


@router.post(
    "/api/v1/suppressions",
    status_code=201,
    response_model=schemas.SuppressOut,
    responses=schemas.errors(400, 401, 413, 415, 422),
    dependencies=[Depends(require_json)],
    tags=["privacy"],
)
async def add_suppression(payload: schemas.SuppressIn, c: Context) -> schemas.SuppressOut:
    """Never store, export or verify this address (or any address at this domain) again, on this installation."""
    _owner(c)
    entry = await anyio.to_thread.run_sync(lambda: privacy.suppress(c.db, payload.value))
    return schemas.SuppressOut(suppressed=entry)


@router.post(
    "/api/v1/leads/forget",
    response_model=schemas.ForgetOut,
    responses=schemas.errors(400, 401, 413, 415, 422),
    dependencies=[Depends(require_json)],
    tags=["privacy"],
)
async def forget_address(payload: schemas.ForgetIn, c: Context) -> schemas.ForgetOut:
    """Remove an address from your leads, exports and cached answers, and suppress it."""
    owner = _owner(c)
    done = await anyio.to_thread.run_sync(lambda: privacy.forget(c.db, payload.email, owner))
    return schemas.ForgetOut(**done)


def estimated_time(max_results: int) -> str:
    minutes = max(1, round(0.5 + max_results / 40))
    return f"about {minutes} minute" + ("s" if minutes != 1 else "")


@router.post(
    "/functions/v1/business-discovery-background",
    status_code=202,
    response_model=schemas.CompatOut,
    responses=schemas.errors(400, 401, 403, 409, 413, 415, 422, 429, 503),
    dependencies=[Depends(require_json)],
    tags=["compatibility"],
)
async def business_discovery_background(
    payload: schemas.CompatIn, request: Request, response: Response, idempotency_key: IdempotencyKey = None
) -> schemas.CompatOut:
    """The original product's endpoint: same body, same answer fields; now backed by the durable queue."""
    body = payload.to_request()
    submission = await submit(request, response, body, idempotency_key=idempotency_key, label=payload.sessionUserId)
    job = submission.job
    return schemas.CompatOut(
        success=True,
        message="Discovery started in the background; follow realtimeChannel for progress.",
        jobId=job.id,
        campaignId=submission.campaign_id,
        status=job.status.value,
        estimatedTime=estimated_time(body.max_results),
        realtimeChannel=links(request, job.id, submission.campaign_id).events,
        sessionToken=submission.session_token,
    )

