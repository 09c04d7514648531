"""Stage bookkeeping shared by the stages: start once, finish with a checkpoint;
and what every stage reads of its job: the campaign config and the provider call context."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection

from prospectpro.domain.campaign import CampaignConfig, Stage
from prospectpro.jobs.model import Change, Job
from prospectpro.jobs.run import JobRun
from prospectpro.providers.protocols import PASS_THROUGH, CallContext, Gate


def start(run: JobRun, stage: Stage) -> Job:
    """Announce the stage, unless an earlier attempt already did."""
    if run.job.checkpoint.get(stage.value) in ("started", "done"):
        return run.job
    return run.change(
        Change(
            kind="stage_started",
            stage=stage,
            progress=stage.band[0],
            checkpoint={stage.value: "started"},
        )
    )


def finish(
    run: JobRun,
    stage: Stage,
    *,
    metrics: Mapping[str, Any] | None = None,
    write: Callable[[Connection], Any] | None = None,
    data: Mapping[str, Any] | None = None,
) -> Job:
    """Store the stage's output and mark it done, in one transaction."""
    return run.change(
        Change(
            kind="stage_completed",
            stage=stage,
            progress=stage.band[1],
            metrics=metrics,
            checkpoint={stage.value: "done"},
            data=data or {},
        ),
        write=write,
    )


def config(run: JobRun) -> CampaignConfig:
    """The campaign this job runs, as submitted (ValueError if its config lacks what a campaign needs)."""
    return CampaignConfig.from_dict(run.job.config)


def campaign_id(run: JobRun) -> str:
    """The campaign the job runs for: every campaign job has one."""
    if run.job.campaign_id is None:
        raise ValueError(f"job {run.job.id} runs no campaign")
    return run.job.campaign_id


def call_context(run: JobRun, campaign: CampaignConfig, *, wanted: int, gate: Gate = PASS_THROUGH) -> CallContext:
    """What a provider call made for this job is told about it."""
    return CallContext(
        job_id=run.job.id,
        owner_id=run.job.owner_id,
        tier=campaign.tier,
        wanted=wanted,
        budget_limit=campaign.budget_limit,
        gate=gate,
        campaign_id=run.job.campaign_id,
        lease_token=run.lease.token,
    )
