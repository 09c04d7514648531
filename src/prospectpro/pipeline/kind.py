"""The campaign as a kind of job: its handler is the pipeline; when its job's
status changes, the campaign row follows and, once it ends, its webhook is owed.

Importing this module registers the hook (``prospectpro.jobs.kinds``): a
process that changes campaign jobs without running a worker (the API or
the CLI cancelling a pending one) has imported it through
``prospectpro.bootstrap`` or ``prospectpro.services.submissions``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from prospectpro.domain.campaign import Stage
from prospectpro.jobs.kinds import JobKind, register_kind
from prospectpro.jobs.model import Job
from prospectpro.jobs.notify import schedule_notification
from prospectpro.store.campaigns import mirror_status

if TYPE_CHECKING:
    from prospectpro.pipeline.runner import Pipeline

CAMPAIGN = "campaign"


def on_campaign_status(conn: Connection, job: Job, now: datetime) -> None:
    """Runs in the transaction of the job's status change: the campaign never shows another status than its job."""
    if job.campaign_id is not None:
        mirror_status(conn, job.campaign_id, job.status.value, now, terminal=job.status.terminal)
    if job.status.terminal and "notify" in job.config:
        schedule_notification(conn, job, now)


def campaign_stage_label(stage: str) -> str:
    return Stage(stage).label


register_kind(CAMPAIGN, on_status_change=on_campaign_status, stage_label=campaign_stage_label)


def campaign_kind(pipeline: Pipeline) -> JobKind:
    return JobKind(CAMPAIGN, pipeline, on_status_change=on_campaign_status, stage_label=campaign_stage_label)
