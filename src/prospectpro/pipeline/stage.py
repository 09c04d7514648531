"""Stage bookkeeping shared by the stages: start once, finish with a checkpoint."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection

from prospectpro.domain.campaign import Stage
from prospectpro.jobs.model import Change, Job
from prospectpro.jobs.run import JobRun


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
