"""The ``places_refresh`` kind of job: fetch a business type in a place from Overpass ahead of time.

``prospectpro places refresh LOCATION --type T`` geocodes the location (as a
campaign's submission does), then enqueues one of these; a worker runs it
like any job (lease, retries, cancel, events). It always asks Overpass, even
when a fresh coverage record exists, and leaves a new one behind: the next
campaigns for that type and place read the index at once.

A provider failure ends the job failed with its reason (never a traceback,
never a retry loop against a provider that just refused).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from prospectpro.config import Settings
from prospectpro.domain.area import Area
from prospectpro.domain.campaign import Tier
from prospectpro.domain.status import JobStatus
from prospectpro.gate.errors import ProviderError
from prospectpro.jobs.kinds import JobKind, register_kind
from prospectpro.jobs.model import Change, Job
from prospectpro.jobs.queue import NewJob, insert_job
from prospectpro.jobs.run import JobRun
from prospectpro.providers.osm import OsmPlacesSource
from prospectpro.providers.protocols import CallContext, Gate
from prospectpro.store.db import Database

PLACES_REFRESH = "places_refresh"
FETCHING = "fetching"

_LABELS = {FETCHING: "Fetching from OpenStreetMap (Overpass)…", "done": "Done"}


def refresh_stage_label(stage: str) -> str:
    return _LABELS.get(stage, "Waiting for a worker…" if stage == "queued" else stage.replace("_", " ").capitalize())


register_kind(PLACES_REFRESH, stage_label=refresh_stage_label)


def refresh_config(business_type: str, tags: tuple[str, ...] | list[str], location: str, area: Area) -> dict[str, Any]:
    return {"business_type": business_type, "tags": list(tags), "location": location, "area": area.to_dict()}


def enqueue_refresh(db: Database, settings: Settings, owner_id: str, config: dict[str, Any]) -> Job:
    with db.write() as conn:
        return insert_job(
            conn, NewJob(kind=PLACES_REFRESH, owner_id=owner_id, config=config, max_attempts=settings.max_attempts)
        )


def refresh_kind(db: Database, settings: Settings, gate: Gate) -> JobKind:
    source = OsmPlacesSource(db, settings)

    def handler(run: JobRun) -> None:
        run.checkpoint()
        config = run.job.config
        area = Area.from_dict(config["area"])
        tags = [str(t) for t in config["tags"]]
        run.change(Change(kind="stage_started", stage=FETCHING, progress=10))
        ctx = CallContext(
            job_id=run.job.id,
            owner_id=run.job.owner_id,
            tier=Tier.base,
            wanted=0,
            budget_limit=Decimal("0"),
            gate=gate,
            lease_token=run.lease.token,
        )
        try:
            stored = source.ensure_fresh(tags, area, ctx, force=True)
        except ProviderError as exc:
            run.change(
                Change(
                    kind="failed",
                    status=JobStatus.failed,
                    error=f"osm: {exc.reason}",
                    metrics={"failed_sources": [{"source": "osm", "reason": exc.reason}]},
                )
            )
            return
        run.change(
            Change(
                kind="completed",
                status=JobStatus.completed,
                stage="done",
                progress=100,
                metrics={"stored": stored or 0, "tags": tags, "area": area.label},
            )
        )

    return JobKind(PLACES_REFRESH, handler, stage_label=refresh_stage_label)
