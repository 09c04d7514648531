"""The web pages (server-rendered): the campaign form and history, a job's live
progress, and a campaign's leads.

Pages use the same session as the JSON API (the ``pp_session`` cookie), render
everything they show on the server (so a page is right before, and without,
JavaScript), and leave live updates to ``static/watch-job.js``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import anyio.to_thread
import jinja2
from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from prospectpro import __version__
from prospectpro.api.auth import Caller, client_address, cross_origin, ensure_session, identify, set_session_cookie
from prospectpro.domain.business_types import all_business_types, suggest
from prospectpro.domain.campaign import STAGE_LABELS, Stage, parse_campaign_request
from prospectpro.domain.scoring import SCORE_COMPONENTS
from prospectpro.domain.status import JobStatus
from prospectpro.domain.text import parse_id
from prospectpro.errors import NotFound, UserError
from prospectpro.jobs import queue
from prospectpro.jobs.model import Job
from prospectpro.places.locations import known_localities
from prospectpro.providers.nominatim import ensure_geocoded
from prospectpro.services import campaigns as campaign_service
from prospectpro.services.submissions import SubmitRequest

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
TEMPLATE_DIR = HERE / "templates"

HISTORY_LIMIT = 50
LEADS_SHOWN = 1000  # the CSV has them all
POLL_MS = 3000
FORM_FIELDS = ("business_type", "location", "max_results", "budget_limit", "min_score")
FORM_DEFAULTS = {"business_type": "", "location": "", "max_results": "20", "budget_limit": "5", "min_score": "50"}
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


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


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
        "history": [job_view(job) for job in jobs],
        "values": dict(FORM_DEFAULTS),
        "error": None,
    }


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
        context.update(values=values, error=exc.message)
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
    return render(
        request,
        "job.html",
        {
            "job": view,
            "steps": stage_steps(view["current_stage"], view["status"]),
            "stage_order": " ".join(STAGE_ORDER),
            "poll_ms": POLL_MS,
        },
    )


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

    def load() -> tuple[dict[str, Any], list[dict[str, Any]], int]:
        campaign = campaign_service.get_campaign(db, wanted, owner)
        found, total = campaign_service.list_leads(db, wanted, owner, limit=LEADS_SHOWN)
        return campaign, found, total

    try:
        campaign, found, total = await anyio.to_thread.run_sync(load)
    except NotFound:
        return not_found(request, "campaign")
    for lead in found:
        lead["website_url"] = safe_url(lead.get("website"))
    return render(request, "campaign.html", {"campaign": campaign, "leads": found, "total": total})


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
    ]
    for path, endpoint, methods in pages:
        app.add_api_route(path, endpoint, methods=methods, include_in_schema=False, response_class=HTMLResponse)
