"""Kinds of job: what the queue runs, by name, without knowing what any of them does.

A job row names its kind. A worker runs the jobs of the kinds it was given
(``JobKind``: the name and the handler, as arq's ``functions`` and
procrastinate's task names map a job to its code).

A kind may also react to its jobs' status changes (a campaign mirrors its
status into ``campaigns`` and owes a webhook when it ends) and name its
stages for people. Those two are needed wherever a job's status changes, and
that is not only in a worker: the API and the CLI cancel pending jobs
themselves. So they live in one registry for the process, filled when the
module that defines a kind is imported (``register_kind``; the campaign kind
in ``prospectpro.pipeline.kind``, imported by ``prospectpro.bootstrap``), and
``apply_change`` looks the hook up by the job's kind. The hook runs inside
the transaction of the change: if it raises, the change is not written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the queue imports this module: types only, no cycle
    from sqlalchemy import Connection

    from prospectpro.jobs.model import Job
    from prospectpro.jobs.run import Handler

StatusHook = Callable[["Connection", "Job", datetime], None]
"""Called with the job as changed, in the change's transaction, when its status changed."""

StageLabel = Callable[[str], str]
"""A stage as the handler reported it → the words a progress display shows."""

QUEUED = "queued"
"""The stage of every job no worker has started yet."""


def plain_label(stage: str) -> str:
    return "Waiting for a worker…" if stage == QUEUED else stage.replace("_", " ").capitalize()


@dataclass(frozen=True)
class JobKind:
    name: str
    handler: Handler
    on_status_change: StatusHook | None = None
    stage_label: StageLabel | None = None


@dataclass(frozen=True)
class _Rules:
    on_status_change: StatusHook | None
    stage_label: StageLabel


_rules: dict[str, _Rules] = {}


def register_kind(
    name: str, *, on_status_change: StatusHook | None = None, stage_label: StageLabel | None = None
) -> None:
    """Declare how jobs of ``name`` react to status changes and label their stages, for this process."""
    _rules[name] = _Rules(on_status_change=on_status_change, stage_label=stage_label or plain_label)


def status_hook(kind: str) -> StatusHook | None:
    rules = _rules.get(kind)
    return rules.on_status_change if rules else None


def stage_label(kind: str, stage: str) -> str:
    rules = _rules.get(kind)
    return (rules.stage_label if rules else plain_label)(stage)


def kind_registry(kinds: Iterable[JobKind] | Mapping[str, JobKind]) -> dict[str, JobKind]:
    """Name → kind, for a worker; registers each kind's hooks, so a kind given only to a worker has them too."""
    listed = list(kinds.values() if isinstance(kinds, Mapping) else kinds)
    registry: dict[str, JobKind] = {}
    for kind in listed:
        if kind.name in registry:
            raise ValueError(f"job kind {kind.name!r} given twice")
        registry[kind.name] = kind
        if kind.on_status_change is not None or kind.stage_label is not None:
            register_kind(kind.name, on_status_change=kind.on_status_change, stage_label=kind.stage_label)
    if not registry:
        raise ValueError("a worker needs at least one job kind")
    return registry
