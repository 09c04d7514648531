"""What the ``prospectpro`` command prints: the progress line, the result table, the lists and summaries.

Everything here fits the terminal it is given (``width``, from COLUMNS or
the terminal): the progress line keeps its percentage and a short bar and
trims its metrics first; tables drop columns rather than break a URL or an
e-mail address mid-word (``--wide`` shows them all); prose wraps at word
boundaries. cli.py decides what to print, this module how.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from rich import box
from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.progress import ProgressColumn, Task
from rich.table import Table
from rich.text import Text

from prospectpro.domain.business_types import BusinessType
from prospectpro.domain.campaign import Stage
from prospectpro.domain.status import JobStatus

OSM_ATTRIBUTION = "Business data © OpenStreetMap contributors, ODbL (https://www.openstreetmap.org/copyright)"
OFFLINE_IMPORT_HINT = (
    "To work offline there, import the region's OpenStreetMap extract: download it from "
    "https://download.geofabrik.de (the page lists each file's size) and run "
    "`prospectpro places import FILE.osm.pbf` (the bundled 0.7 MB extract takes about 0.2 s; "
    "the time grows with the file's size). Or give a place or lat,lon inside the data you have."
)


def dollars(value: Any) -> str:
    """ "$0.00", "$0.105", "$1,234.50": at least cents, never a float's noise."""
    try:
        amount = Decimal(str(value if value is not None else "0"))
    except InvalidOperation:
        return str(value)
    if amount == amount.quantize(Decimal("0.01")):
        return f"${amount:,.2f}"
    return f"${amount.normalize():,f}"


# -- the live progress line ---------------------------------------------------------------------
BAR_MIN, BAR_MAX = 10, 30
_ELAPSED = 8  # " 0:00:03"


def metrics_parts(data: Mapping[str, Any]) -> list[str]:
    """An event's counts, most telling first: found, qualified, enriched, cost."""
    m = data.get("metrics") or {}
    return [
        f"found {m.get('businesses_found', 0)}",
        f"qualified {m.get('qualified_leads', 0)}",
        f"enriched {m.get('leads_enriched', 0)}",
        f"cost {dollars(m.get('total_cost', '0'))}",
    ]


def metrics_line(data: Mapping[str, Any]) -> str:
    return " · ".join(metrics_parts(data))


# When the line is short of room, the parts are dropped in this order (indexes into metrics_parts):
# enriched, qualified, found; the cost goes last.
_DROP_ORDER = (2, 1, 0, 3)


def progress_line(label: str, percent: int, parts: Sequence[str], elapsed: float | None, width: int) -> Text:
    """One line of at most ``width - 1`` cells: label, bar, percent always; metrics and elapsed time as they fit."""
    room = max(width - 1, 20)
    percent = min(max(int(percent), 0), 100)
    pct = f"{percent:>3}%"
    clock = ""
    if elapsed is not None:
        seconds = int(elapsed)
        clock = f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    kept = list(parts)
    dropped = iter(_DROP_ORDER)

    def used(label_text: str, shown: list[str], with_clock: bool) -> int:
        text = " · ".join(p for p in shown if p)
        return (
            len(label_text)
            + 1
            + BAR_MIN
            + 1
            + len(pct)
            + (1 + len(text) if text else 0)
            + (1 + len(clock) if with_clock and clock else 0)
        )

    with_clock = bool(clock)
    while used(label, kept, with_clock) > room:
        index = next(dropped, None)
        if index is not None and index < len(kept) and kept[index]:
            kept[index] = ""
        elif index is None and with_clock:
            with_clock = False
        elif index is None:
            break
    if used(label, kept, with_clock) > room:  # a very narrow terminal: shorten the label itself
        keep = max(room - used("", kept, with_clock) - 1, 4)
        label = label[:keep] + "…" if len(label) > keep + 1 else label
    metrics = " · ".join(p for p in kept if p)
    bar_width = min(BAR_MAX, BAR_MIN + max(room - used(label, kept, with_clock), 0))
    filled = round(bar_width * percent / 100)
    line = Text(label, style="bold")
    line.append(" ")
    line.append("━" * filled, style="green" if percent == 100 else "magenta")
    line.append("━" * (bar_width - filled), style="grey23")
    line.append(" " + pct, style="cyan")
    if metrics:
        line.append(" " + metrics)
    if with_clock and clock:
        line.append(" " + clock, style="yellow")
    return line


class ProgressLine(ProgressColumn):
    """The whole live line as one rich column, re-laid out for the console's width at every refresh."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def render(self, task: Task) -> Text:
        return progress_line(
            str(task.description),
            int(task.completed),
            task.fields.get("parts", []),
            task.elapsed,
            self.console.width,
        )


def stage_label(stage: str | None) -> str:
    try:
        return Stage(stage or Stage.queued.value).label
    except ValueError:
        return str(stage)


# -- tables -------------------------------------------------------------------------------------
def _fits(console: Console, table: Table, width: int) -> bool:
    return Measurement.get(console, console.options.update_width(10_000), table).minimum <= width


def _short_url(url: str) -> str:
    """ "https://www.cafeaalto.fi/" → "cafeaalto.fi": the part a reader needs, shown whole."""
    text = url.split("://", 1)[-1]
    text = text.removeprefix("www.")
    return text.rstrip("/")


# (header, value of a lead, wraps at spaces): columns of the result table, in the order shown.
def _lead_columns(wide: bool) -> dict[str, tuple[Any, bool]]:
    return {
        "Score": (lambda lead: str(lead.get("confidence_score", "")), False),
        "Business": (lambda lead: lead.get("business_name") or "", True),
        "Category": (lambda lead: _category(lead.get("category")), True),
        "Address": (lambda lead: lead.get("address") or "", True),
        "Phone": (lambda lead: lead.get("phone") or "", False),
        "Website": (lambda lead: (lead.get("website") or "") if wide else _short_url(lead.get("website") or ""), False),
        "Email": (lambda lead: lead.get("email") or "", False),
        "Email status": (lambda lead: lead.get("email_status") or "", False),
        "Rating": (lambda lead: _rating(lead), False),
    }


# Which columns a narrow terminal keeps first.
_NARROW_PRIORITY = ("Score", "Business", "Phone", "Website", "Email", "Address", "Category")


def _category(category: str | None) -> str:
    from prospectpro.services.export import category_label

    return category_label(category) or ""


def _rating(lead: Mapping[str, Any]) -> str:
    if lead.get("rating") is None:
        return ""
    reviews = lead.get("review_count")
    return f"{lead['rating']:.1f}" + (f" ({reviews})" if reviews is not None else "")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], wraps: Mapping[str, bool]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for i, header in enumerate(headers):
        if wraps.get(header, False):
            # Wide enough for the column's longest word (up to 20): words wrap whole, as far as it can be.
            longest = max([len(word) for row in rows for word in str(row[i]).split()] or [0])
            table.add_column(header, overflow="fold", min_width=max(min(longest, 20), min(len(header), 8)))
        else:
            # Never shortened: a table that cannot give it its width leaves the column out instead.
            widest = max([len(header), *(len(str(row[i])) for row in rows)])
            table.add_column(header, no_wrap=True, min_width=widest)
    for row in rows:
        table.add_row(*(Text(str(cell)) for cell in row))  # data, never markup: "[bar]" stays in a name
    return table


def leads_table(
    leads: Sequence[Mapping[str, Any]], console: Console, *, wide: bool = False
) -> tuple[Table, list[str], int | None]:
    """(the result table, the columns left out for the width, the width to print it at: None for the console's).

    Narrow: the columns of ``_NARROW_PRIORITY`` that fit, a URL or an address
    never cut; ``wide``: every column, on lines as long as they need.
    """
    columns = _lead_columns(wide)
    present = [
        name for name in columns if name in ("Score", "Business") or any(columns[name][0](lead) for lead in leads)
    ]
    wraps = {name: columns[name][1] for name in columns}

    def build(names: Sequence[str]) -> Table:
        ordered = [n for n in columns if n in names]
        return _table(ordered, [[columns[n][0](lead) for n in ordered] for lead in leads], wraps)

    if wide:
        table = build(present)
        needed = Measurement.get(console, console.options.update_width(10_000), table).maximum
        return table, [], max(console.width, needed)
    chosen: list[str] = []
    for name in _NARROW_PRIORITY:
        if name in present and _fits(console, build([*chosen, name]), console.width - 1):
            chosen.append(name)
    if not chosen:
        chosen = ["Score", "Business"]
    return build(chosen), [n for n in present if n not in chosen], None


def types_table(types: Iterable[BusinessType]) -> Table:
    """`prospectpro types`: a header, and synonyms that wrap at word boundaries."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("Type", no_wrap=True)
    table.add_column("OpenStreetMap tags", overflow="fold", min_width=len("OpenStreetMap tags"))
    table.add_column("Overture", overflow="fold", ratio=1)  # Overture Maps categories (issue 12)
    table.add_column("Also understood", overflow="fold", ratio=1)
    for t in types:
        table.add_row(Text(t.name), Text(", ".join(t.tags)), Text(", ".join(t.overture)), Text(", ".join(t.synonyms)))
    return table


def unique_prefixes(ids: Sequence[str], minimum: int = 8) -> dict[str, str]:
    """Each id → its shortest prefix (``minimum`` characters at least) that no other of ``ids`` starts with."""
    found: dict[str, str] = {}
    for ident in ids:
        length = minimum
        while length < len(ident) and any(o != ident and o.startswith(ident[:length]) for o in ids):
            length += 1
        found[ident] = ident[:length]
    return found


def _id_table(
    console: Console,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    wraps: Mapping[str, bool],
    unique: Callable[[str, str], bool] | None,
) -> Table:
    """A table whose first column is an id: whole where the table fits, else a unique prefix.

    ``unique(prefix, id)``: whether the commands taking an id read ``prefix`` as this id (the
    owner may have more ids than the table shows); an id whose prefix is not is shown whole.
    """
    table = _table(headers, rows, wraps)
    if not rows or _fits(console, table, console.width - 1):
        return table
    short = unique_prefixes([row[0] for row in rows])
    if unique is not None:
        short = {ident: prefix if unique(prefix, ident) else ident for ident, prefix in short.items()}
    return _table(headers, [[short[row[0]], *row[1:]] for row in rows], wraps)


def _created(value: Any) -> str:
    text = str(value or "")
    return text[:16].replace("T", " ")  # "2026-12-02 01:30", UTC


def jobs_table(jobs: Sequence[Any], console: Console, unique: Callable[[str, str], bool] | None = None) -> Table:
    """`prospectpro jobs list`."""
    rows = []
    for j in jobs:
        status = j.status.value if j.status != JobStatus.processing else f"running {j.progress}%"
        rows.append(
            [
                j.id,
                status,
                str(j.config.get("business_type", j.kind)),
                str(j.config.get("location", "")),
                str(j.metrics.get("leads", "")),
                j.created_at.strftime("%Y-%m-%d %H:%M"),
            ]
        )
    headers = ("Job", "Status", "Type", "Location", "Leads", "Created (UTC)")
    return _id_table(console, headers, rows, {"Type": True, "Location": True}, unique)


def campaigns_table(
    campaigns: Sequence[Mapping[str, Any]], console: Console, unique: Callable[[str, str], bool] | None = None
) -> Table:
    """`prospectpro campaigns list`: id, type, location, status, leads, cost, created."""
    rows = [
        [
            str(c["id"]),
            str(c["business_type"]),
            str(c["location"]),
            str(c["status"]),
            f"{c['results_count']}/{c['max_results']}",
            dollars(c["total_cost"]),
            _created(c["created_at"]),
        ]
        for c in campaigns
    ]
    headers = ("Campaign", "Type", "Location", "Status", "Leads", "Cost", "Created (UTC)")
    return _id_table(console, headers, rows, {"Type": True, "Location": True}, unique)


# -- summaries ----------------------------------------------------------------------------------
class _Grid(Table):
    def add_row(self, *cells: Any, **kwargs: Any) -> None:
        super().add_row(*(Text(str(c)) if isinstance(c, str) else c for c in cells), **kwargs)  # data, not markup


def _grid() -> Table:
    grid = _Grid(box=None, padding=(0, 1), collapse_padding=True, show_header=False, show_edge=False, pad_edge=False)
    grid.add_column(justify="right", style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    return grid


def job_summary(job: Any) -> Table:
    """`prospectpro jobs show`: what the job is, where it is, what it found and spent, in words."""
    config, m = job.config, job.metrics
    grid = _grid()
    grid.add_row("job:", job.id)
    if job.campaign_id:
        grid.add_row("campaign:", job.campaign_id)
    grid.add_row("status:", f"{job.status.value}, {job.progress}% ({stage_label(job.current_stage)})")
    grid.add_row("attempts:", f"{job.attempts} of {job.max_attempts}")
    if config.get("business_type"):
        area = (config.get("area") or {}).get("label") or config.get("location")
        what = f"{config.get('business_type_label') or config['business_type']} in {area}"
        if config.get("max_results"):
            what += f", {config['max_results']} requested"
        if config.get("min_score") is not None:
            what += f", minimum score {config['min_score']}"
        if config.get("budget_limit") is not None:
            what += f", budget {dollars(config['budget_limit'])}"
        if config.get("tier"):
            what += f", tier {config['tier']}"
        if config.get("sources"):
            what += f", sources {', '.join(config['sources'])}"
        if config.get("include_delivered"):
            what += ", delivered businesses included"
        grid.add_row("campaign of:", what)
    if m.get("summary"):
        grid.add_row("result:", str(m["summary"]))
    if "businesses_found" in m:
        found = f"{m.get('businesses_found', 0)} businesses"
        counts = m.get("source_counts") or {}
        if counts:
            found += " (" + ", ".join(f"{name} {n}" for name, n in counts.items()) + ")"
        found += f"; {m.get('qualified_leads', 0)} qualified; {m.get('leads_enriched', 0)} enriched"
        if m.get("leads") is not None:
            found += f"; {m['leads']} leads"
        if m.get("avg_confidence") is not None:
            found += f", average score {m['avg_confidence']}"
        grid.add_row("found:", found)
    skipped = {k: v for k, v in (m.get("skipped") or {}).items() if v}
    if skipped:
        grid.add_row("left out:", ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in skipped.items()))
    if "total_cost" in m:
        cost = dollars(m["total_cost"])
        if m.get("cost_per_lead") is not None:
            cost += f" ({dollars(m['cost_per_lead'])} per lead)"
        if m.get("budget_exhausted"):
            cost += "; stopped at the budget"
        grid.add_row("cost:", cost)
    for name, stats in (m.get("providers") or {}).items():
        grid.add_row(
            f"{name}:",
            f"{stats.get('calls', 0)} calls, {stats.get('reused', 0)} reused, {stats.get('errors', 0)} errors, "
            f"cost {dollars(stats.get('cost', '0'))}, saved {dollars(stats.get('saved_cost', '0'))}",
        )
    for failed in m.get("failed_sources") or []:
        grid.add_row("failed:", f"{failed.get('source')}: {failed.get('reason')}")
    for key in ("created_at", "started_at", "completed_at"):
        value = getattr(job, key, None)
        grid.add_row(f"{key.removesuffix('_at')}:", value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-")
    return grid


def job_error_line(job: Any) -> str | None:
    """The job's error on one line of its own, not wrapped: whole for copying into a search or a report."""
    return f"{'error:':>12} {job.error}" if job.error else None


def outcome_lines(job: Any, leads: Sequence[Mapping[str, Any]], *, export_ref: str, width: int) -> list[RenderableType]:
    """What `discover` prints after the table: the summary, the cost, the ids, how to export, attribution."""
    from prospectpro.pipeline.results import sources_asked, summary

    m = job.metrics
    lines: list[RenderableType] = []
    if job.status == JobStatus.completed:
        if m.get("summary"):
            lines.append(Text(str(m["summary"])))
        else:  # a job of an older version: the sentence from its metrics
            budget = Decimal(str(job.config.get("budget_limit", "0"))) if m.get("budget_exhausted") else None
            lines.append(
                Text(
                    summary(
                        len(leads),
                        int(m.get("requested", job.config.get("max_results", len(leads)))),
                        budget=budget,
                        skipped=m.get("skipped"),
                        businesses_found=m.get("businesses_found"),
                        sources_asked=sources_asked(job.config, m),
                        failed_sources=m.get("failed_sources") or (),
                        min_score=job.config.get("min_score"),
                    )
                )
            )
        if m.get("businesses_found") == 0:
            lines.append(Text(OFFLINE_IMPORT_HINT))
    cost = f"Total cost: {dollars(m.get('total_cost') or '0')}"
    if m.get("cost_per_lead") is not None and Decimal(str(m["cost_per_lead"])) > 0:
        cost += f" ({dollars(m['cost_per_lead'])} per lead)"
    if m.get("budget_exhausted"):
        cost += f", stopped at the budget of {dollars(job.config.get('budget_limit', '0'))}"
    lines.append(Text(cost))
    ids = f"Job {job.id}" + (f" · campaign {job.campaign_id}" if job.campaign_id else "")
    if len(ids) >= width and job.campaign_id:
        lines.extend([Text(f"Job {job.id}"), Text(f"Campaign {job.campaign_id}")])
    else:
        lines.append(Text(ids))
    if leads:
        lines.append(Text(f"Export: prospectpro export {export_ref} --format xlsx -o leads.xlsx (or csv, json)"))
    lines.append(Text(OSM_ATTRIBUTION))
    if any(str(ref).startswith("google:") for lead in leads for ref in lead.get("sources") or ()):
        lines.append(Text("Place data: Google Maps"))  # Google's terms: attribute where its data shows
    return lines


def hidden_columns_note(hidden: Sequence[str], width: int) -> str:
    return (
        f"Not shown at {width} columns: {', '.join(hidden)} (--wide shows every column; "
        "`prospectpro export` writes them all)."
    )


def interrupt_message(job_id: str, lease_seconds: float) -> str:
    return (
        f"Interrupted: only the following stopped. Job {job_id} stays in the queue and nothing it found is lost; "
        "the next worker that runs (`prospectpro worker`, `prospectpro serve`, or another `prospectpro discover`) "
        f"resumes it where it stopped (a job that was running waits up to {lease_seconds:g} s for its lease to "
        f"lapse). Follow it: prospectpro jobs events {job_id} --follow · stop it: prospectpro jobs cancel {job_id}"
    )
