"""The web pages (server-rendered): the campaign form and history, a job's live
progress, and a campaign's leads.

Pages use the same session as the JSON API (the ``pp_session`` cookie), render
everything they show on the server (so a page is right before, and without,
JavaScript), and leave live updates to ``static/watch-job.js``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import anyio.to_thread
import jinja2
from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel
from sqlalchemy import func, select

from prospectpro import __version__
from prospectpro.api.auth import (
    Caller,
    clear_session_cookie,
    client_address,
    cross_origin,
    ensure_session,
    identify,
    session_token,
    set_session_cookie,
    set_signed_in_cookie,
)
from prospectpro.domain.business import Business
from prospectpro.domain.business_types import all_business_types, suggest
from prospectpro.domain.campaign import STAGE_LABELS, Stage, parse_campaign_request
from prospectpro.domain.scoring import SCORE_COMPONENTS
from prospectpro.domain.status import JobStatus
from prospectpro.domain.text import parse_id
from prospectpro.domain.tiers import TIERS
from prospectpro.errors import NotFound, UserError
from prospectpro.jobs import queue
from prospectpro.jobs.model import Job
from prospectpro.places.locations import known_localities
from prospectpro.providers.nominatim import ensure_geocoded
from prospectpro.services import campaigns as campaign_service
from prospectpro.services.submissions import SubmitRequest
from prospectpro.services.users import revoke_session, sign_in_with_key
from prospectpro.store.schema import job_candidates
from prospectpro.store.schema import leads as leads_table
from prospectpro.web import views

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
TEMPLATE_DIR = HERE / "templates"

HISTORY_LIMIT = 50
LEADS_SHOWN = 1000  # the CSV has them all
LEADS_PAGE = 50  # rows the leads table shows at once (static/campaign-page.js pages through the rest)
POLL_MS = 3000
FORM_FIELDS = ("business_type", "location", "max_results", "budget_limit", "min_score", "tier", "include_delivered")
FORM_DEFAULTS = {
    "business_type": "",
    "location": "",
    "max_results": "20",
    "budget_limit": "5",
    "min_score": "50",
    "tier": "base",
    "include_delivered": "",
}
TIER_TEXT = {
    "base": "Base — free sources only (OpenStreetMap, Overture, the businesses' own websites); never spends",
    "professional": "Professional — adds Google Places, Hunter.io and NeverBounce, within your budget",
    "enterprise": "Enterprise — as Professional, and keeps e-mail addresses that name a person",
}
# Which form field an error message is about (the messages name the field in plain words), so the page
# shows it next to that field.
ERROR_FIELDS = (
    ("business type", "business_type"),
    ("unsupported osm key", "business_type"),
    ("location", "location"),
    ("place", "location"),
    ("area", "location"),
    ("max results", "max_results"),
    ("budget", "budget_limit"),
    ("minimum score", "min_score"),
    ("tier", "tier"),
    ("source", "tier"),
    ("include delivered", "include_delivered"),
)
# The stages a user watches, in order (initializing and finished are the ends of the bar).
WATCHED_STAGES = (
    Stage.discovering_businesses,
    Stage.scoring_businesses,
    Stage.enriching_contacts,
    Stage.storing_results,
)
# The order of every stage, which the page hands its script (data-stage-order) to draw the stepper.
STAGE_ORDER = tuple(stage.value for stage in Stage)
STATUS_TEXT = {
    JobStatus.pending.value: "Waiting for a worker",
    JobStatus.processing.value: "Running",
    JobStatus.completed.value: "Completed",
    JobStatus.failed.value: "Failed",
    JobStatus.cancelled.value: "Cancelled",
}
SECURITY_HEADERS = {
    # No inline script and nothing from elsewhere: every script is a file under /static.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


# -- formatting ---------------------------------------------------------------


def money(value: Any) -> str:
    if isinstance(value, jinja2.Undefined) or value is None:
        return "$0.00"
    try:
        return f"${float(value):,.2f}"
    except (TypeError, ValueError):
        return "$0.00"


def when(value: str | None) -> str:
    """'2025-11-28T22:54:01.123Z' → '2025-11-28 22:54 UTC'."""
    if not value:
        return ""
    return value[:16].replace("T", " ") + " UTC"


def component_label(name: str) -> str:
    return "verified email" if name == "email_verified" else name.replace("_", " ")


def safe_url(value: str | None) -> str | None:
    """Only http(s) links are clickable: a source may say 'javascript:…'."""
    if not value:
        return None
    text = value.strip()
    if urlsplit(text).scheme.lower() in ("http", "https"):
        return text
    if "://" not in text and ":" not in text.split("/")[0] and "." in text:
        return "https://" + text  # "example.fi" as mappers often write it
    return None


def display_url(value: str) -> str:
    """'https://www.example.fi/cafe/forum/' → 'example.fi/cafe/forum' (the link keeps it all)."""
    text = value.strip()
    for prefix in ("https://", "http://"):
        if text.lower().startswith(prefix):
            text = text[len(prefix) :]
    if text.lower().startswith("www."):
        text = text[4:]
    text = text.rstrip("/")
    return text if len(text) <= 40 else text[:39] + "…"


def plain_words(message: str) -> str:
    """An error as a browser user reads it: no command lines (they are for the CLI's users)."""
    text = re.sub(r"[;,]?\s*`prospectpro [^`]*`[^.;]*", "", message)
    text = re.sub(r"`([^`]*)`", r"\1", text)
    return text.strip()


def error_field(message: str) -> str | None:
    lowered = message.lower()
    for words, field in ERROR_FIELDS:
        if words in lowered:
            return field
    return None


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,  # every template, whatever its name
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = money
    env.filters["when"] = when
    env.filters["display_url"] = display_url
    env.globals.update(
        version=__version__,
        status_text=STATUS_TEXT,
        score_components=SCORE_COMPONENTS,
        component_label=component_label,
        score_max=SCORE_COMPONENTS,
    )
    return env


templates = Jinja2Templates(env=_environment())


def headline(job: Job) -> str:
    """The words next to the bar: the job's stage label (the stage while it runs, the outcome once it
    ended), or that a cancel is on its way. static/job-page.js says the same from the same stage_label."""
    return "Cancelling…" if job.cancel_requested and not job.status.terminal else job.stage_label


def job_view(job: Job) -> dict[str, Any]:
    """What the job page draws; also the state its script starts from."""
    public = job.to_public()
    config = public["config"]
    area = config.get("area") or {}
    completed = job.status == JobStatus.completed
    return {
        "job_id": job.id,
        "campaign_id": job.campaign_id,
        "seq": job.event_seq,
        "status": job.status.value,
        "progress": job.progress,
        "current_stage": job.current_stage,
        "stage_label": job.stage_label,
        "label": headline(job),
        "metrics": job.metrics,
        "error": job.error,
        "cancel_requested": job.cancel_requested,
        "summary": job.metrics.get("summary") if completed else None,
        "title": f"{config.get('business_type_label') or config.get('business_type', '')}"
        f" in {area.get('label') or config.get('location', '')}",
        "max_results": config.get("max_results"),
        "created_at": public["created_at"],
    }


def stage_steps(current: str, status: str) -> list[dict[str, str]]:
    """The stepper: each watched stage is done, current or to do (static/job-page.js redraws it in STAGE_ORDER)."""
    at = STAGE_ORDER.index(current)
    steps = []
    for stage in WATCHED_STAGES:
        position = STAGE_ORDER.index(stage.value)
        if status == JobStatus.completed.value or position < at:
            state = "done"
        elif position == at:
            state = "current"
        else:
            state = "todo"
        steps.append({"stage": stage.value, "name": STAGE_LABELS[stage].rstrip("…"), "state": state})
    return steps


# -- requests -----------------------------------------------------------------


def _state(request: Request) -> Any:
    return request.app.state


def security_headers(settings: Any) -> dict[str, str]:
    """SECURITY_HEADERS, with the map's tile server allowed as an image source when one is configured."""
    headers = dict(SECURITY_HEADERS)
    origin = views.tile_url_origin(getattr(settings, "map_tiles_url", "") or "")
    if origin:
        headers["Content-Security-Policy"] = headers["Content-Security-Policy"].replace(
            "img-src 'self' data:", f"img-src 'self' data: {origin}"
        )
    return headers


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    caller = context.pop("_caller", None)
    if "signed_in" not in context:
        principal = caller.principal if isinstance(caller, Caller) else None
        context["signed_in"] = principal.name if principal is not None and principal.kind == "user" else None
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(security_headers(_state(request).settings))
    return response


def wants_html(request: Request) -> bool:
    """A browser's navigation (it asks for text/html first), not an API client: those get JSON."""
    if request.url.path.startswith(("/api/", "/functions/", "/rest/", "/realtime/")):
        return False
    accept = request.headers.get("accept", "")
    first = accept.split(",")[0].split(";")[0].strip().lower()
    return first in ("text/html", "application/xhtml+xml")


def not_found(request: Request, what: str) -> HTMLResponse:
    return render(request, "not_found.html", {"what": what}, status_code=404)


def same_origin(request: Request) -> bool:
    """Refuse form posts made by other origins: the SameSite=Lax cookie keeps other sites out,
    not other origins of this site (a sibling subdomain)."""
    return not cross_origin(request)


async def _caller(request: Request) -> Caller:
    return await identify(request, _state(request).db)


async def _with_session(request: Request, caller: Caller) -> Caller:
    state = _state(request)
    return await ensure_session(caller, request, state.db, state.settings)


async def home_context(request: Request, caller: Caller) -> dict[str, Any]:
    state = _state(request)
    owner = caller.owner_id

    def load() -> tuple[list[Job], list[str]]:
        jobs = queue.list_jobs(state.db, owner, limit=HISTORY_LIMIT)[0] if owner else []
        return jobs, known_localities(state.db)[:200]

    jobs, localities = await anyio.to_thread.run_sync(load)
    return {
        "types": all_business_types(),
        "localities": localities,
        "location_examples": location_examples(localities),
        "tiers": [(rule.tier.value, TIER_TEXT.get(rule.tier.value, rule.tier.value)) for rule in TIERS.values()],
        "history": [job_view(job) for job in jobs],
        "values": dict(FORM_DEFAULTS),
        "error": None,
        "error_field": None,
        "sign_in_error": None,
        "_caller": caller,
    }


def location_examples(localities: list[str]) -> list[str]:
    """Real examples for the location hint: places this server knows, then a point with a radius."""
    return [*localities[:2], "60.1699,24.9384,1500"]


async def home(request: Request) -> Response:
    caller = await _caller(request)
    try:
        caller = await _with_session(request, caller)
    except UserError:
        pass  # too many new sessions from this address: show the form anyway; submitting retries
    response = render(request, "home.html", await home_context(request, caller))
    set_session_cookie(response, caller, _state(request).settings)
    return response


async def submit_form(request: Request) -> Response:
    """The form without JavaScript: validated by the same service as the JSON API."""
    if not same_origin(request):
        return render(request, "error.html", {"message": "This form can only be sent from this site."}, 403)
    state = _state(request)
    form = await request.form()
    values = {name: str(form.get(name) or "").strip() for name in FORM_FIELDS}
    data: dict[str, object] = {"business_type": values["business_type"], "location": values["location"]}
    for name in ("max_results", "budget_limit", "min_score"):
        if values[name]:
            data[name] = values[name]
    data["tier"] = values["tier"] or "base"
    data["include_delivered"] = values["include_delivered"] in ("on", "true", "1", "yes")
    caller = await _caller(request)
    try:
        campaign = parse_campaign_request(data)
        # As the API does: a place to look up is looked up before the writer (providers/nominatim.py).
        await anyio.to_thread.run_sync(lambda: ensure_geocoded(state.db, state.settings, None, campaign.location))
        submission = await state.submitter.submit(
            SubmitRequest(
                campaign,
                owner_id=caller.owner_id,
                per_minute=state.settings.submissions_per_minute,
                session_limit=(client_address(request), state.settings.sessions_per_minute),
            )
        )
    except UserError as exc:
        context = await home_context(request, caller)
        message = plain_words(exc.message)
        context.update(values=values, error=message, error_field=error_field(message))
        response = render(request, "home.html", context, status_code=exc.http_status)
        set_session_cookie(response, caller, state.settings)
        return response
    if submission.session:
        caller = Caller(*submission.session)
    redirect = RedirectResponse(f"/jobs/{submission.job.id}", status_code=303)
    set_session_cookie(redirect, caller, state.settings)
    return redirect


async def _owned_job(request: Request, job_id: str) -> Job | None:
    caller = await _caller(request)
    found = parse_id(job_id)  # anything but a UUID names no job (and "%00" would upset PostgreSQL)
    if caller.owner_id is None or found is None:
        return None
    db = _state(request).db
    try:
        return await anyio.to_thread.run_sync(lambda: queue.get_job(db, found, caller.owner_id))
    except NotFound:
        return None


async def job_page(request: Request, job_id: str) -> Response:
    job = await _owned_job(request, job_id)
    if job is None:
        return not_found(request, "job")
    view = job_view(job)
    state = _state(request)
    rows: list[dict[str, Any]] = []
    counts = None
    if job.status.terminal and job.campaign_id:  # the leads are stored when the job ends
        campaign_id, owner = job.campaign_id, job.owner_id

        def load() -> tuple[list[dict[str, Any]], tuple[int, int]]:
            found, _ = campaign_service.list_leads(state.db, campaign_id, owner, limit=LEADS_SHOWN)
            return found, email_counts(state.db, campaign_id)

        rows_found, counts = await anyio.to_thread.run_sync(load)
        rows = views.lead_rows(rows_found)
    elif job.metrics.get("businesses_found"):  # running: what discovery found, until the leads are stored
        rows = views.lead_rows(await anyio.to_thread.run_sync(lambda: found_businesses(state.db, job.id)))
    return render(
        request,
        "job.html",
        {
            "job": view,
            "steps": stage_steps(view["current_stage"], view["status"]),
            "stage_order": " ".join(STAGE_ORDER),
            "poll_ms": POLL_MS,
            "funnel": views.funnel(job.metrics, counts, before_found=True),
            "map": map_for(state.settings, job.config.get("area"), rows)
            if job.metrics.get("businesses_found")
            else None,
            "_caller": await _caller(request),
        },
    )


def found_businesses(db: Any, job_id: str) -> list[dict[str, Any]]:
    """A running job's businesses as the map draws them (name, position and its source, score once scored)."""
    with db.read() as conn:
        found = conn.execute(
            select(job_candidates.c.business, job_candidates.c.score)
            .where(job_candidates.c.job_id == job_id, job_candidates.c.duplicate_of.is_(None))
            .order_by(job_candidates.c.position)
            .limit(LEADS_SHOWN)
        ).all()
    out = []
    for data, score in found:
        business = Business.from_dict(dict(data))
        out.append(
            {
                "business_name": business.name,
                "latitude": business.latitude,
                "longitude": business.longitude,
                "sources": business.sources,
                "field_sources": {"latitude": business.source_of("latitude") or {}},
                "confidence_score": "" if score is None else score,
                "phone": business.phone,
                "email": business.email,
                "website_url": safe_url(business.website),
            }
        )
    return out


def map_for(settings: Any, area: Any, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    return views.map_view(
        area if isinstance(area, dict) else None,
        rows,
        tiles_url=settings.map_tiles_url,
        tiles_attribution=settings.map_tiles_attribution,
    )


def email_counts(db: Any, campaign_id: str) -> tuple[int, int]:
    """(leads with an e-mail, leads with a verified one) of the campaign, all of them (not just those shown)."""
    has_email = leads_table.c.email.is_not(None) & (leads_table.c.email != "")
    with db.read() as conn:
        row = conn.execute(
            select(
                func.count().filter(has_email),
                func.count().filter(has_email & (func.lower(leads_table.c.email_status) == "valid")),
            ).where(leads_table.c.campaign_id == campaign_id)
        ).one()
    return int(row[0] or 0), int(row[1] or 0)


async def cancel_form(request: Request, job_id: str) -> Response:
    """Cancel without JavaScript; the page's script calls the JSON API instead."""
    if not same_origin(request):
        return render(request, "error.html", {"message": "This form can only be sent from this site."}, 403)
    caller = await _caller(request)
    found = parse_id(job_id)
    if caller.owner_id is None or found is None:
        return not_found(request, "job")
    db = _state(request).db
    try:
        await anyio.to_thread.run_sync(lambda: queue.request_cancel(db, found, caller.owner_id or "-"))
    except NotFound:
        return not_found(request, "job")
    return RedirectResponse(f"/jobs/{found}", status_code=303)


async def campaign_page(request: Request, campaign_id: str) -> Response:
    caller = await _caller(request)
    owner = caller.owner_id
    wanted = parse_id(campaign_id)
    if owner is None or wanted is None:
        return not_found(request, "campaign")
    db = _state(request).db

    def load() -> tuple[dict[str, Any], list[dict[str, Any]], int, Job | None, tuple[int, int]]:
        campaign = campaign_service.get_campaign(db, wanted, owner)
        found, total = campaign_service.list_leads(db, wanted, owner, limit=LEADS_SHOWN)
        job = None
        if campaign.get("job_id"):
            try:
                job = queue.get_job(db, campaign["job_id"], owner)
            except NotFound:
                job = None
        return campaign, found, total, job, email_counts(db, wanted)

    try:
        campaign, found, total, job, counts = await anyio.to_thread.run_sync(load)
    except NotFound:
        return not_found(request, "campaign")
    for lead in found:
        lead["website_url"] = safe_url(lead.get("website"))
    rows = views.lead_rows(found)
    settings = _state(request).settings
    return render(
        request,
        "campaign.html",
        {
            "campaign": campaign,
            "leads": rows,
            "total": total,
            "funnel": views.funnel(job.metrics, counts) if job is not None else None,
            "map": map_for(settings, job.config.get("area") if job is not None else None, rows),
            "page_size": LEADS_PAGE,
            "_caller": caller,
        },
    )


async def sign_in(request: Request) -> Response:
    """Sign in on the web with an API key: this browser's session becomes that user's, so the campaigns
    made with the key (CLI, API) and on the web are one history."""
    if not same_origin(request):  # login CSRF: another site must not sign a browser into its account
        return render(request, "error.html", {"message": "This form can only be sent from this site."}, 403)
    state = _state(request)
    form = await request.form()
    key = str(form.get("api_key") or "").strip()
    made = await anyio.to_thread.run_sync(lambda: sign_in_with_key(state.db, key)) if key else None
    if made is None:
        caller = await _caller(request)
        context = await home_context(request, caller)
        context["sign_in_error"] = (
            "That API key is not valid (or has been revoked). Copy it again from where it was created."
            if key
            else "Paste your API key to sign in."
        )
        return render(request, "home.html", context, status_code=401 if key else 422)
    _, token = made
    redirect = RedirectResponse("/", status_code=303)
    set_signed_in_cookie(redirect, token, state.settings)
    return redirect


async def sign_out(request: Request) -> Response:
    if not same_origin(request):
        return render(request, "error.html", {"message": "This form can only be sent from this site."}, 403)
    state = _state(request)
    token = session_token(request)
    if token:
        await anyio.to_thread.run_sync(lambda: revoke_session(state.db, token))
    redirect = RedirectResponse("/", status_code=303)
    clear_session_cookie(redirect, state.settings)
    return redirect


async def favicon(request: Request) -> Response:
    return FileResponse(
        STATIC_DIR / "favicon.svg", media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"}
    )


class BusinessTypesOut(BaseModel):
    types: list[str]


async def business_types(
    prefix: Annotated[str, Query(max_length=100)] = "",
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> BusinessTypesOut:
    """Autocomplete for the campaign form: known type names and synonyms matching prefix."""
    return BusinessTypesOut(types=suggest(prefix, limit))


def mount(app: FastAPI) -> None:
    """Add the page routes and /static to the app."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_api_route(
        "/api/v1/business-types",
        business_types,
        methods=["GET"],
        response_model=BusinessTypesOut,
        tags=["campaigns"],
        summary="Business type suggestions",
    )
    pages: list[tuple[str, Callable[..., Any], list[str]]] = [
        ("/", home, ["GET"]),
        ("/campaigns", submit_form, ["POST"]),
        ("/jobs/{job_id}", job_page, ["GET"]),
        ("/jobs/{job_id}/cancel", cancel_form, ["POST"]),
        ("/campaigns/{campaign_id}", campaign_page, ["GET"]),
        ("/sign-in", sign_in, ["POST"]),
        ("/sign-out", sign_out, ["POST"]),
        ("/favicon.ico", favicon, ["GET"]),
    ]
    for path, endpoint, methods in pages:
        app.add_api_route(path, endpoint, methods=methods, include_in_schema=False, response_class=HTMLResponse)
