"""The ``prospectpro`` command: a thin edge over the services.

Every error a user can cause ends as one line on stderr and a non-zero
exit code; tracebacks are for PROSPECTPRO_DEBUG=1.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from prospectpro import cli_output
from prospectpro.bootstrap import build_worker, open_database
from prospectpro.config import Settings
from prospectpro.domain.business_types import all_business_types
from prospectpro.domain.campaign import Stage, Tier, parse_campaign_request
from prospectpro.domain.status import JobStatus
from prospectpro.errors import InvalidInput, UserError
from prospectpro.jobs import queue
from prospectpro.jobs.events import follow_events
from prospectpro.jobs.model import Job, JobEvent
from prospectpro.jobs.worker import live_workers
from prospectpro.providers.nominatim import ensure_geocoded
from prospectpro.services import campaigns as campaign_service
from prospectpro.services.export import find_campaign_id, leads_csv, leads_json, leads_xlsx, load_export
from prospectpro.services.submissions import submit_campaign
from prospectpro.store import migrate as migrations
from prospectpro.store.db import Database
from prospectpro.store.schema import LOCAL_USER_ID

app = typer.Typer(
    help="Durable business-discovery campaigns with live progress.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
jobs_app = typer.Typer(help="Inspect and control jobs.", no_args_is_help=True)
places_app = typer.Typer(help="The local OpenStreetMap business index.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
app.add_typer(places_app, name="places")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

EXIT_FAILED = 1
EXIT_CANCELLED = 4
EXIT_INTERRUPTED = 130

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            err.print(f"[red]error:[/red] {exc.message}", highlight=False)
            raise typer.Exit(exc.exit_code) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get("PROSPECTPRO_DEBUG"):
                raise
            err.print(f"[red]error:[/red] {type(exc).__name__}: {exc}", highlight=False)
            err.print("(set PROSPECTPRO_DEBUG=1 to see the traceback)")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _run_to_end(db: Database, settings: Settings, job_id: str) -> Job:
    """Follow a job to its end, with an in-process worker when no worker is running; the final job."""
    worker = None
    if not live_workers(db, within_seconds=settings.lease_seconds):
        worker = build_worker(db, settings).start()
    try:
        for _ in follow_events(db, job_id, poll_interval=settings.poll_interval):
            pass
    finally:
        if worker is not None:
            worker.stop()
    return queue.get_job(db, job_id)


def _me(db: Database) -> str:
    """Whose campaigns the command line works with: the installation's local user, or — with
    PROSPECTPRO_API_KEY set — that key's user, so the CLI, the API and the web page share one history."""
    import os

    from prospectpro.services.users import authenticate

    key = os.environ.get("PROSPECTPRO_API_KEY", "").strip()
    if not key:
        return LOCAL_USER_ID
    principal = authenticate(db, key)
    if principal is None or principal.kind != "user":
        raise InvalidInput("PROSPECTPRO_API_KEY is not a valid API key (make one with `prospectpro users create NAME`)")
    return principal.user_id


def _open(prepare: bool = True) -> tuple[Settings, Database]:
    settings = Settings()
    return settings, open_database(settings, prepare=prepare)


# -- discover --------------------------------------------------------------
@app.command()
@handle_errors
def discover(
    business_type: Annotated[str, typer.Argument(help='What to look for, e.g. "cafe", "dentist".')],
    location: Annotated[str, typer.Argument(help='A place name ("Helsinki", "Kluuvi, Helsinki") or lat,lon[,radius_m].')],
    max_results: Annotated[int, typer.Option("--max-results", "-n", help="How many leads (1–10,000).")] = 20,
    budget: Annotated[str, typer.Option("--budget", help="Spending cap in USD.")] = "5",
    min_score: Annotated[int, typer.Option("--min-score", help="Minimum confidence score (0–100).")] = 50,
    tier: Annotated[
        Tier,
        typer.Option(
            "--tier",
            help="base: free sources and the website's contacts ($0); professional: + Google, Hunter.io and "
            "NeverBounce within a per-lead cap; enterprise: + named decision-makers, a higher cap (README, Tiers).",
        ),
    ] = Tier.base,
    sources: Annotated[
        str | None,
        typer.Option("--sources", help="Every source the campaign uses, e.g. osm,website or osm,google,website (default: all the tier allows)."),
    ] = None,
    quote_only: Annotated[
        bool, typer.Option("--quote", help="Only say what the campaign would use and cost; enqueue nothing.")
    ] = False,
    include_delivered: Annotated[
        bool, typer.Option("--include-delivered", help="Keep businesses delivered in earlier campaigns.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the final job and leads as JSON.")] = False,
    no_follow: Annotated[
        bool,
        typer.Option(
            "--no-follow",
            help="Only enqueue and print the job id; a running worker (`prospectpro worker` or `serve`) does the job.",
        ),
    ] = False,
    wide: Annotated[
        bool, typer.Option("--wide", help="Every column of the result table, however wide the terminal.")
    ] = False,
) -> None:
    """Run a discovery campaign through the durable queue and show its progress.

    Ctrl-C stops only the following: the job stays queued, keeps what it found,
    and the next worker that runs resumes it (`prospectpro jobs events ID --follow`
    picks the progress up again).
    """
    try:
        budget_value = Decimal(budget)
    except ArithmeticError:
        raise InvalidInput(f"budget must be a number of USD, got {budget!r}") from None
    request = parse_campaign_request(
        {
            "business_type": business_type,
            "location": location,
            "max_results": max_results,
            "budget_limit": budget_value,
            "min_score": min_score,
            "tier": tier,
            "include_delivered": include_delivered,
            "sources": sources.split(",") if sources is not None else None,
        }
    )
    settings, db = _open()
    # A place the local data does not know is looked up (Nominatim) before anything is written;
    # ambiguous, too large, unknown or Nominatim unreachable: exit 2 with the reason.
    ensure_geocoded(db, settings, None, request.location)
    if quote_only:
        from prospectpro.services.quote import quote

        found = quote(db, settings, _me(db), request, anonymous=False)
        if as_json:
            print(json.dumps(found.to_dict(), indent=2))
        else:
            out.print(found.sentence(), highlight=False)
        return
    submission = submit_campaign(db, settings, _me(db), request)
    job = submission.job
    _print_chosen_place(job)
    if no_follow:
        out.print(job.id)
        return
    worker = None
    if not live_workers(db, within_seconds=settings.lease_seconds):
        worker = build_worker(db, settings).start()
    try:
        final = _follow(db, job, quiet=as_json, poll_interval=settings.poll_interval)
    except KeyboardInterrupt:
        err.print()
        err.print(cli_output.interrupt_message(job.id, settings.lease_seconds), highlight=False, soft_wrap=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        if worker is not None:
            worker.stop()
    assert final.campaign_id is not None  # discover submits a campaign job
    leads, _ = campaign_service.list_leads(db, final.campaign_id, _me(db))
    if as_json:
        print(json.dumps({"job": final.to_public(), "leads": leads}, indent=2, ensure_ascii=False))
    else:
        _print_outcome(db, final, leads, wide=wide)
    raise typer.Exit(_exit_code(final))


def _exit_code(job: Job) -> int:
    return {JobStatus.completed: 0, JobStatus.cancelled: EXIT_CANCELLED}.get(job.status, EXIT_FAILED)


def _metrics_line(data: dict[str, Any]) -> str:
    return cli_output.metrics_line(data)


def _follow(db: Database, job: Job, *, quiet: bool, poll_interval: float) -> Job:
    if quiet:
        for _ in follow_events(db, job.id, poll_interval=poll_interval):
            pass
        return queue.get_job(db, job.id)
    # One column laying out the whole line for the terminal's width (cli_output.progress_line).
    with Progress(cli_output.ProgressLine(err), console=err, transient=False) as bar:
        task = bar.add_task(Stage.queued.label, total=100, parts=[])
        event: JobEvent
        for event in follow_events(db, job.id, poll_interval=poll_interval):
            bar.update(
                task,
                completed=event.data.get("progress", 0),
                description=cli_output.stage_label(event.data.get("current_stage")),
                parts=cli_output.metrics_parts(event.data),
            )
    return queue.get_job(db, job.id)


def _print_outcome(db: Database, job: Job, leads: list[dict[str, Any]], *, wide: bool = False) -> None:
    if job.status == JobStatus.failed:
        err.print(f"[red]Job {job.id} failed:[/red] {job.error}", highlight=False)
    elif job.status == JobStatus.cancelled:
        err.print(f"[yellow]Job {job.id} was cancelled;[/yellow] {len(leads)} leads found before that are kept.")
    if leads:
        table, hidden, width = cli_output.leads_table(leads, out, wide=wide)
        # --wide: as wide as the table needs (print's own width= is capped at the terminal's).
        (Console(width=width) if width is not None else out).print(table, soft_wrap=False)
        if hidden:
            out.print(cli_output.hidden_columns_note(hidden, out.width), highlight=False, soft_wrap=False)
    for line in cli_output.outcome_lines(job, leads, export_ref=_export_ref(db, job), width=out.width):
        out.print(line, highlight=False, soft_wrap=False)


def _export_ref(db: Database, job: Job) -> str:
    """The campaign id to export by: a unique 8-character prefix where the whole id makes the line too long."""
    campaign_id = job.campaign_id or job.id
    if out.width >= 100:
        return campaign_id
    try:
        return campaign_id[:8] if find_campaign_id(db, campaign_id[:8], _me(db)) == campaign_id else campaign_id
    except UserError:
        return campaign_id


OSM_ATTRIBUTION = cli_output.OSM_ATTRIBUTION


def _print_chosen_place(job: Job) -> None:
    """A geocoded location: which place Nominatim's answer was taken as (it is in the job's config)."""
    area = job.config.get("area") or {}
    if area.get("osm_ref"):
        err.print(f"Location: {area.get('label')} (OpenStreetMap {area['osm_ref']}, found by Nominatim)", highlight=False)


# -- worker ----------------------------------------------------------------
@app.command()
@handle_errors
def worker(
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1, max=64, help="Jobs run at once.")] = 1,
) -> None:
    """Run jobs from the queue until stopped (Ctrl-C or SIGTERM)."""
    import signal

    settings, db = _open()
    runner = build_worker(db, settings, concurrency)
    signal.signal(signal.SIGTERM, lambda *_: runner.stop(timeout=0))
    err.print(f"worker {runner.worker_id} running {concurrency} job(s) at a time; Ctrl-C to stop")
    try:
        runner.run_forever()
    except KeyboardInterrupt:
        runner.stop()


# -- jobs ------------------------------------------------------------------
@jobs_app.command("list")
@handle_errors
def jobs_list(
    status: Annotated[JobStatus | None, typer.Option("--status", help="Only jobs in this state.")] = None,
    kind: Annotated[str, typer.Option("--kind", help="Which kind of job.")] = "campaign",
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Your jobs of one kind (campaigns by default), newest first."""
    _, db = _open()
    jobs, total = queue.list_jobs(db, _me(db), kind=kind, status=status, limit=limit)
    if as_json:
        print(json.dumps({"jobs": [j.to_public() for j in jobs], "total": total}, indent=2))
        return
    out.print(cli_output.jobs_table(jobs, out, lambda prefix, ident: _names(db, prefix, ident)), soft_wrap=False)
    out.print(f"{len(jobs)} of {total} {kind} jobs")


def _names(db: Database, prefix: str, ident: str, *, campaign: bool = False) -> bool:
    """Whether `jobs show PREFIX` (or, for a campaign, `export PREFIX`) reads ``prefix`` as ``ident``."""
    try:
        if campaign:
            return find_campaign_id(db, prefix, _me(db)) == ident
        return queue.find_job_id(db, prefix, _me(db)) == ident
    except UserError:
        return False


@jobs_app.command("show")
@handle_errors
def jobs_show(job_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """One job: status, progress, metrics and its error, if any."""
    _, db = _open()
    job = queue.get_job(db, queue.find_job_id(db, job_id, _me(db)), _me(db))
    if as_json:
        print(json.dumps(job.to_public(), indent=2))
        return
    out.print(cli_output.job_summary(job), highlight=False, soft_wrap=False)
    error = cli_output.job_error_line(job)
    if error:
        out.print(error, highlight=False, markup=False)
    out.print(f"{'':>12} (--json prints the whole job document)", highlight=False)


@jobs_app.command("cancel")
@handle_errors
def jobs_cancel(job_id: str) -> None:
    """Cancel a job; a running one stops at its next checkpoint and keeps its leads."""
    _, db = _open()
    job = queue.request_cancel(db, queue.find_job_id(db, job_id, _me(db)), _me(db))
    if job.status == JobStatus.cancelled:
        out.print(f"job {job.id} cancelled")
    elif job.status.terminal:
        out.print(f"job {job.id} had already ended: {job.status.value}")
    else:
        out.print(f"job {job.id}: cancellation requested; it stops at its next checkpoint")


@jobs_app.command("events")
@handle_errors
def jobs_events(
    job_id: str,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events until the job ends.")] = False,
    after: Annotated[int, typer.Option("--after", min=0, help="Only events after this sequence number.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """A job's event log."""
    settings, db = _open()
    full_id = queue.find_job_id(db, job_id, _me(db))
    queue.get_job(db, full_id, _me(db))
    events = (
        follow_events(db, full_id, after=after, poll_interval=settings.poll_interval)
        if follow
        else queue.list_events(db, full_id, after=after, limit=1_000_000)
    )
    for event in events:
        if as_json:
            print(json.dumps(event.to_public(), ensure_ascii=False), flush=True)
        else:
            d = event.data
            out.print(
                f"{event.seq:>5} {event.created_at:%H:%M:%S} {event.kind:<16} {d.get('status'):<10} "
                f"{d.get('progress'):>3}% {d.get('current_stage')}  {_metrics_line(d)}",
                highlight=False,
            )


# -- campaigns -------------------------------------------------------------
campaigns_app = typer.Typer(help="Your campaigns (a campaign's id or its job's id both export it).", no_args_is_help=True)
app.add_typer(campaigns_app, name="campaigns")


@campaigns_app.command("list")
@handle_errors
def campaigns_list(
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Your campaigns, newest first: id, type, location, status, leads, cost, created."""
    from prospectpro.services.export import list_campaigns

    _, db = _open()
    found, total = list_campaigns(db, _me(db), limit)
    if as_json:
        print(json.dumps({"campaigns": found, "total": total}, indent=2, ensure_ascii=False))
        return
    out.print(
        cli_output.campaigns_table(found, out, lambda prefix, ident: _names(db, prefix, ident, campaign=True)),
        highlight=False,
        soft_wrap=False,
    )
    out.print(f"{len(found)} of {total} campaigns; export one: prospectpro export ID --format xlsx -o leads.xlsx")


# -- serve and users ---------------------------------------------------------
users_app = typer.Typer(help="API users and their keys.", no_args_is_help=True)
app.add_typer(users_app, name="users")


class LogLevel(StrEnum):
    critical = "critical"
    error = "error"
    warning = "warning"
    info = "info"
    debug = "debug"
    trace = "trace"


def _listen_host(value: str) -> str:
    # uvicorn reads "" as every interface: that must be asked for by name.
    if not value.strip():
        raise typer.BadParameter("give an address to listen on: 127.0.0.1 (this machine) or 0.0.0.0 (every interface)")
    return value.strip()


def server_options(settings: Settings, host: str, port: int, log_level: LogLevel) -> dict[str, Any]:
    """uvicorn's options for `serve`. X-Forwarded-For / -Proto are believed only from the proxies the
    operator names (PROSPECTPRO_TRUSTED_PROXIES): uvicorn's default believes any peer on 127.0.0.1,
    which lets every local process (or a proxy passing the header on) choose its client address."""
    return {
        "host": host,
        "port": port,
        "log_level": log_level.value,
        "access_log": log_level in (LogLevel.debug, LogLevel.trace),
        "timeout_graceful_shutdown": 5,
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": settings.trusted_proxies or None,
    }


@app.command()
@handle_errors
def serve(
    host: Annotated[
        str, typer.Option("--host", callback=_listen_host, help="Address to listen on; 0.0.0.0 for every interface.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535)] = 8000,
    workers: Annotated[
        int,
        typer.Option("--workers", min=0, max=64, help="In-process workers (of each process); 0 for API only."),
    ] = 2,
    api_processes: Annotated[
        int,
        typer.Option(
            "--api-processes", min=1, max=64, help="Server processes sharing the port (the machine's cores)."
        ),
    ] = 1,
    log_level: Annotated[LogLevel, typer.Option("--log-level", case_sensitive=False)] = LogLevel.info,
) -> None:
    """Run the HTTP API, the web pages and N in-process workers."""
    import uvicorn

    from prospectpro.api.app import create_app

    settings, db = _open()  # migrates and imports the bundled places once, before any server process
    options = server_options(settings, host, port, log_level)
    if host not in ("0.0.0.0", "::") and host.lower() not in settings.allowed_hosts:
        # The name it was told to listen on is one clients use: the URLs it returns may carry it.
        settings.allowed_hosts.append(host.lower())
        os.environ["PROSPECTPRO_ALLOWED_HOSTS"] = json.dumps(settings.allowed_hosts)  # for --api-processes
    if api_processes == 1:
        uvicorn.run(create_app(settings, workers=workers, db=db, freeze_gc=True), **options)
        return
    db.dispose()
    # Each process builds its own app (and database handle) from the environment.
    os.environ["PROSPECTPRO_SERVE_WORKERS"] = str(workers)
    uvicorn.run("prospectpro.api.app:app_from_env", factory=True, workers=api_processes, **options)


def _monthly_budget(value: str | None) -> Decimal | None:
    """"25", "12.50" → USD; "none" (or absent) → no monthly budget."""
    if value is None or value.strip().lower() in ("none", ""):
        return None
    try:
        return Decimal(value.strip())
    except ArithmeticError:
        raise InvalidInput(f"monthly budget must be a number of USD or 'none', got {value!r}") from None


@users_app.command("create")
@handle_errors
def users_create(
    name: str,
    monthly_budget: Annotated[
        str | None,
        typer.Option("--monthly-budget", help="The most this user's campaigns may spend per calendar month (UTC), USD."),
    ] = None,
) -> None:
    """Create a user and print its API key (shown once; only its hash is stored)."""
    from prospectpro.services.users import create_user

    _, db = _open()
    principal, key = create_user(db, name, monthly_budget=_monthly_budget(monthly_budget))
    err.print(f"user {principal.name} ({principal.user_id}); its API key, shown only now:")
    out.print(key)


@users_app.command("set-budget")
@handle_errors
def users_set_budget(
    user: Annotated[str, typer.Argument(help="The user's name or id.")],
    amount: Annotated[str, typer.Argument(help="USD per calendar month (UTC), or 'none' for no monthly budget.")],
) -> None:
    """Set or remove a user's monthly budget: what all its campaigns together may spend per month."""
    from prospectpro.services.users import set_monthly_budget

    _, db = _open()
    changed = set_monthly_budget(db, user, _monthly_budget(amount))
    budget = changed["monthly_budget"]
    out.print(
        f"{changed['name']} ({changed['id']}): "
        + (f"monthly budget ${Decimal(budget):.2f}" if budget is not None else "no monthly budget"),
        highlight=False,
    )


@users_app.command("list")
@handle_errors
def users_list() -> None:
    """Users with API keys."""
    from prospectpro.services.users import list_users

    _, db = _open()
    table = Table()
    for column in ("Id", "Name", "Key", "Monthly budget", "Created", "Revoked"):
        table.add_column(column)
    for u in list_users(db):
        budget = f"${Decimal(u['monthly_budget']):.2f}" if u["monthly_budget"] is not None else "none"
        table.add_row(u["id"], u["name"], u["key_prefix"] + "…", budget, u["created_at"], u["revoked_at"] or "")
    out.print(table)


@users_app.command("revoke")
@handle_errors
def users_revoke(user: Annotated[str, typer.Argument(help="The user's name or id.")]) -> None:
    """Revoke a user's API keys."""
    from prospectpro.services.users import revoke_user

    _, db = _open()
    revoked = revoke_user(db, user)
    out.print(f"revoked {revoked['name']} ({revoked['id']})")


# -- operating ---------------------------------------------------------------
_MARKS = {"ok": "[green]✓[/green]", "warn": "[yellow]![/yellow]", "fail": "[red]✗[/red]"}


def _print_check(check: Any) -> None:
    line = f"{_MARKS[check.status]} {check.name}: {check.detail}"
    if check.fix:
        line += f"  → {check.fix}"
    out.print(line, highlight=False)


@app.command()
@handle_errors
def doctor() -> None:
    """Check this installation: database, schema, workers, discovery data, providers."""
    from prospectpro.ops import FAIL
    from prospectpro.ops import doctor as run_doctor

    settings = Settings()
    db = open_database(settings, prepare=False)
    checks = run_doctor(settings, db)
    for check in checks:
        _print_check(check)
    if any(c.status == FAIL for c in checks):
        raise typer.Exit(1)


@app.command()
@handle_errors
def prune(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be deleted.")] = False,
    older_than_days: Annotated[
        float | None, typer.Option("--older-than-days", min=0.001, help="Default: PROSPECTPRO_PRUNE_AFTER_DAYS.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Delete finished jobs' events and candidates, expired ledger answers and old sign-outs (never a lead)."""
    from prospectpro.store.prune import prune as run_prune

    settings, db = _open()
    report = run_prune(
        db,
        older_than_days=older_than_days or settings.prune_after_days,
        batch_size=settings.prune_batch_size,
        dry_run=dry_run,
    )
    if as_json:
        print(json.dumps(report.as_dict()))
        return
    if report.skipped:
        out.print("another process is pruning right now; nothing done")
        return
    verb = "would delete" if dry_run else "deleted"
    out.print(
        f"{verb}, older than {report.cutoff:%Y-%m-%d %H:%M} UTC: the events ({report.events}) and candidates "
        f"({report.candidates}) of {report.jobs} finished job(s), {report.ledger_answers} expired ledger "
        f"answer(s), {report.sessions} old sign-out(s)",
        highlight=False,
    )


@app.command()
@handle_errors
def smoke(
    url: Annotated[str, typer.Option("--url", help="Base URL of a deployment, e.g. http://127.0.0.1:8000")],
    api_key: Annotated[str | None, typer.Option("--api-key", help="Use this key instead of a new session.")] = None,
    business_type: Annotated[str, typer.Option("--business-type")] = "cafe",
    location: Annotated[str, typer.Option("--location")] = "Helsinki",
    max_results: Annotated[int, typer.Option("--max-results", min=1, max=100)] = 3,
    timeout: Annotated[float, typer.Option("--timeout", min=1)] = 120.0,
    operator_token: Annotated[
        str | None,
        typer.Option("--operator-token", envvar="PROSPECTPRO_OPERATOR_TOKEN", help="For the detailed /healthz."),
    ] = None,
) -> None:
    """Create a small campaign over HTTP, follow it to the end, and check every record."""
    from prospectpro.ops import SmokeFailure, SmokeOptions
    from prospectpro.ops import smoke as run_smoke

    options = SmokeOptions(url, api_key, business_type, location, max_results, timeout, operator_token)
    try:
        run_smoke(options, _print_check)
    except SmokeFailure as exc:
        out.print(f"{_MARKS['fail']} {exc}", highlight=False)
        raise typer.Exit(1) from None
    out.print("smoke test passed")


# -- the rest --------------------------------------------------------------
@app.command()
@handle_errors
def migrate() -> None:
    """Create or upgrade the database schema."""
    settings = Settings()
    db = open_database(settings, prepare=False)
    before = migrations.current_revision(db)
    migrations.upgrade(db)
    after = migrations.current_revision(db)
    out.print(f"schema at {after}" + ("" if before == after else f" (was {before or 'empty'})"))


@places_app.command("import")
@handle_errors
def places_import(path: Annotated[Path, typer.Argument(help="An OpenStreetMap .osm.pbf extract.")]) -> None:
    """Load the named businesses and place names of an OSM extract."""
    from prospectpro.places.importer import import_pbf

    if not path.is_file():
        raise InvalidInput(f"no such file: {path}")
    _, db = _open()
    try:
        stats = import_pbf(db, path)
    except RuntimeError as exc:  # pyosmium's error for a file that is not OSM data
        raise InvalidInput(f"cannot read {path} as OpenStreetMap data: {exc}") from None
    out.print(f"imported {stats.places} businesses and {stats.localities} places from {path} in {stats.seconds:.1f} s")


@places_app.command("import-overture")
@handle_errors
def places_import_overture(
    bbox: Annotated[str, typer.Option("--bbox", help="W,S,E,N in degrees: the region to keep locally.")],
) -> None:
    """Copy the Overture Maps places of a region into the local cache, so campaigns there run offline."""
    from prospectpro.providers import overture

    parts = [p.strip() for p in bbox.split(",")]
    try:
        west, south, east, north = (float(p) for p in parts)
    except ValueError:
        raise InvalidInput(f"--bbox must be W,S,E,N as four numbers, got {bbox!r}") from None
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise InvalidInput(f"--bbox {bbox!r} is not a box (W < E, S < N, in range)")
    settings, db = _open()
    if not overture.enabled(settings):
        raise InvalidInput("set PROSPECTPRO_OVERTURE_PATH (a release's folder or s3://…/type=place/) first")
    with Progress(console=out, transient=True) as progress:
        progress.add_task(f"reading Overture places in {bbox}", total=None)
        result = overture.import_box(db, settings, (south, west, north, east))
    out.print(
        f"imported {result.places} Overture places ({result.bytes_written / 1e6:.1f} MB, "
        f"{result.stats.row_groups_read} of {result.stats.row_groups_total} row groups read) into {result.path}"
    )
    out.print(overture.ATTRIBUTION)


@places_app.command("refresh")
@handle_errors
def places_refresh(
    location: Annotated[str, typer.Argument(help='A place ("Austin, TX") or lat,lon[,radius_m].')],
    business_type: Annotated[str, typer.Option("--type", "-t", help='The business type, e.g. "dentist".')],
    no_follow: Annotated[bool, typer.Option("--no-follow", help="Only enqueue; print the job id.")] = False,
) -> None:
    """Fetch a business type in a place from OpenStreetMap (Overpass) now, as a job of its own."""
    from prospectpro.domain.business_types import resolve_business_type
    from prospectpro.places.coverage import served_locally
    from prospectpro.places.locations import resolve_location
    from prospectpro.places.refresh import enqueue_refresh, refresh_config
    from prospectpro.providers import overpass

    kind = resolve_business_type(business_type)
    settings, db = _open()
    if overpass.spec(settings) is None:
        raise InvalidInput("live OpenStreetMap is off: PROSPECTPRO_OVERPASS_BASE_URL is empty")
    ensure_geocoded(db, settings, None, location)
    area = resolve_location(db, location, settings=settings)
    if served_locally(db, area):
        raise InvalidInput(
            f"{area.label} is inside an imported extract, which serves it: re-import that extract to refresh it"
        )
    job = enqueue_refresh(db, settings, _me(db), refresh_config(kind.name, kind.tags, location, area))
    if no_follow:
        out.print(job.id)
        return
    final = _run_to_end(db, settings, job.id)
    if final.status != JobStatus.completed:
        err.print(f"[red]refresh {final.status.value}:[/red] {final.error or ''}", highlight=False)
        raise typer.Exit(_exit_code(final))
    out.print(
        f"stored {final.metrics.get('stored', 0)} {kind.name} businesses ({', '.join(kind.tags)}) in {area.label}; "
        f"campaigns there read them for {settings.discovery_cache_days:g} days  ·  job {final.id}",
        highlight=False,
    )
    out.print(OSM_ATTRIBUTION, highlight=False)


@app.command()
@handle_errors
def export(
    campaign_id: Annotated[
        str, typer.Argument(metavar="ID", help="A campaign id, a job id, or a unique prefix of either (6+ characters).")
    ],
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="csv (CRM imports), xlsx (Excel: typed cells) or json (everything).")
    ] = "csv",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write; default stdout.")] = None,
) -> None:
    """Export a campaign's leads (the columns: README, "Exports")."""
    if fmt not in ("csv", "xlsx", "json"):
        raise InvalidInput(f"format must be csv, xlsx or json, got {fmt!r}")
    _, db = _open()
    data = load_export(db, find_campaign_id(db, campaign_id, _me(db)), _me(db))
    if fmt == "xlsx":
        body = leads_xlsx(data)
        if output is None:
            if sys.stdout.isatty():
                raise InvalidInput("an XLSX file is binary: give -o FILE.xlsx (or redirect the output)")
            sys.stdout.buffer.write(body)
            sys.stdout.flush()
        else:
            output.write_bytes(body)
    else:
        text = leads_csv(data) if fmt == "csv" else leads_json(data.campaign, data.leads)
        if output is None:
            sys.stdout.write(text)
        else:
            output.write_text(text, encoding="utf-8", newline="")
    if output is not None:
        err.print(f"wrote {len(data.leads)} leads of campaign {data.campaign['id']} to {output}")


# -- leads: Google's content terms ---------------------------------------------
leads_app = typer.Typer(help="A campaign's leads: Google's content terms.", no_args_is_help=True)
app.add_typer(leads_app, name="leads")


@leads_app.command("refresh")
@handle_errors
def leads_refresh(
    campaign_id: Annotated[str, typer.Argument(help="The campaign's id, its job's id, or a unique prefix.")],
    budget: Annotated[
        str | None, typer.Option("--budget", help="Spending cap in USD (default: the quoted maximum).")
    ] = None,
    no_follow: Annotated[bool, typer.Option("--no-follow", help="Only enqueue; print the job id.")] = False,
) -> None:
    """Re-fetch the Google values of a campaign's leads by place id (Place Details: paid, quoted, budgeted)."""
    from prospectpro.providers.google_places import ATTRIBUTION
    from prospectpro.providers.google_refresh import enqueue_refresh, refresh_quote

    settings, db = _open()
    if not settings.google_places_api_key:
        raise InvalidInput("Google Places is not configured: set PROSPECTPRO_GOOGLE_PLACES_API_KEY")
    campaign_id = find_campaign_id(db, campaign_id, _me(db))  # an id, its job's id or a unique prefix
    campaign_service.get_campaign(db, campaign_id, _me(db))  # 404 for an unknown campaign
    found = refresh_quote(db, settings, _me(db), campaign_id)
    try:
        cap = found.max_cost if budget is None else Decimal(budget)
    except ArithmeticError:
        raise InvalidInput(f"budget must be a number of USD, got {budget!r}") from None
    out.print(
        f"Refreshing {found.leads} leads makes at most {found.leads} Google Place Details requests "
        f"at ${found.unit} each: at most ${found.max_cost} (budget ${cap}).",
        highlight=False,
    )
    if found.leads == 0:
        return
    job = enqueue_refresh(db, settings, _me(db), campaign_id, cap)
    if no_follow:
        out.print(job.id)
        return
    final = _run_to_end(db, settings, job.id)
    m = final.metrics
    if final.status != JobStatus.completed:
        err.print(f"[red]refresh {final.status.value}:[/red] {final.error or ''}", highlight=False)
        raise typer.Exit(_exit_code(final))
    line = f"refreshed {m.get('refreshed', 0)} leads, {m.get('gone', 0)} gone from Google"
    if m.get("budget_exhausted"):
        line += f"; stopped at the budget of ${cap}"
    for failed in m.get("failed_sources") or []:
        line += f"; {failed['source']} failed: {failed['reason']}"
    out.print(f"{line}  ·  job {final.id}", highlight=False)
    out.print(f"Place data: {ATTRIBUTION}", highlight=False)


@leads_app.command("purge-expired")
@handle_errors
def leads_purge_expired() -> None:
    """Clear the lead values only Google gave once Google's content terms no longer let us keep them."""
    from prospectpro.domain.clock import utcnow
    from prospectpro.store.leads import clear_expired_google_fields

    _, db = _open()
    with db.write() as conn:
        cleared = clear_expired_google_fields(conn, utcnow())
    out.print(f"cleared the expired Google values of {cleared} leads", highlight=False)


@leads_app.command("forget")
@handle_errors
def leads_forget(email: Annotated[str, typer.Argument(metavar="EMAIL")]) -> None:
    """Remove an address from every lead, export and cached answer of this installation, and suppress it."""
    from prospectpro.services.privacy import forget

    _, db = _open()
    done = forget(db, email)
    out.print(
        f"forgot {done['email']}: removed from {done['leads']} leads and {done['cached_answers']} cached answers; "
        "suppressed",
        highlight=False,
    )


# -- the suppression list --------------------------------------------------------
suppress_app = typer.Typer(help="Addresses and domains never stored, exported or verified.", no_args_is_help=True)
app.add_typer(suppress_app, name="suppress")


@suppress_app.command("add")
@handle_errors
def suppress_add(value: Annotated[str, typer.Argument(metavar="EMAIL|DOMAIN")]) -> None:
    """Suppress an address, or every address at a domain."""
    from prospectpro.services.privacy import suppress

    _, db = _open()
    out.print(f"suppressed {suppress(db, value)}", highlight=False)


@suppress_app.command("remove")
@handle_errors
def suppress_remove(value: Annotated[str, typer.Argument(metavar="EMAIL|DOMAIN")]) -> None:
    """Take an entry off the suppression list."""
    from prospectpro.services.privacy import unsuppress

    _, db = _open()
    if not unsuppress(db, value):
        raise InvalidInput(f"{value} is not on the suppression list")
    out.print(f"removed {value.strip().lower()} from the suppression list", highlight=False)


@suppress_app.command("list")
@handle_errors
def suppress_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The suppression list."""
    from prospectpro.services.privacy import suppressed

    _, db = _open()
    entries = suppressed(db)
    if as_json:
        print(json.dumps(entries, indent=2))
        return
    for entry in entries:
        out.print(f"{entry['value']}\t{entry['kind']}\t{entry['reason']}\t{entry['created_at']}", highlight=False)


@app.command()
@handle_errors
def providers() -> None:
    """The sources by their shared names: which this installation can use, which cost money, which tiers."""
    from prospectpro.domain.clock import utcnow
    from prospectpro.domain.tiers import PAID_SOURCES, SOURCE_NAMES, TIERS
    from prospectpro.pipeline.runner import configured_sources
    from prospectpro.store.ledger import provider_states

    settings, db = _open()
    configured = configured_sources(settings)
    with db.read() as conn:
        states = provider_states(conn)
    now = utcnow()
    for name in SOURCE_NAMES:
        tiers = ", ".join(t.value for t, rule in TIERS.items() if name in rule.sources)
        state = states.get(name)
        breaker = f"; breaker open ({state.reason})" if state is not None and state.open_at(now) else ""
        out.print(
            f"{name:12} {'configured' if name in configured else 'not configured':15} "
            f"{'paid' if name in PAID_SOURCES else 'free':5} tiers: {tiers}{breaker}",
            highlight=False,
        )


@app.command("types")
def types_list() -> None:
    """The business types discovery understands: the name to type, the OpenStreetMap tags, other words for it."""
    types = all_business_types()
    out.print(cli_output.types_table(types), highlight=False, soft_wrap=False)
    out.print(f"{len(types)} types; a raw tag such as amenity=cafe works too.", highlight=False)


def main() -> None:
    app()
