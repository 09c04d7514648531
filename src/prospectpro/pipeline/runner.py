"""The campaign pipeline: five stages, each resumable from its checkpoint.

A stage whose checkpoint says "done" is skipped on a resumed attempt, so a
job taken over by another worker neither rediscovers nor re-enriches what
was already stored.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from prospectpro.config import Settings
from prospectpro.domain.campaign import Stage
from prospectpro.domain.status import JobStatus
from prospectpro.jobs.run import CancelRequested, JobRun, ends_in_cancel
from prospectpro.pipeline import discover, enrich, qualify, results, stage
from prospectpro.providers import google_places
from prospectpro.providers.osm import OsmPlacesSource
from prospectpro.providers.osm_email import OsmEmail
from prospectpro.providers.protocols import PASS_THROUGH, DiscoverySource, Enricher, Gate
from prospectpro.store.db import Database


@dataclass(frozen=True)
class Pipeline:
    sources: Sequence[DiscoverySource]
    enrichers: Sequence[Enricher]
    enrich_concurrency: int = 4
    enrich_step_timeout: float = 120.0  # seconds one enrichment step may take for one lead
    gate: Gate = PASS_THROUGH  # what every provider call goes through

    def __call__(self, run: JobRun) -> None:
        run_campaign(run, self)


def load_object(path: str) -> object:
    """'package.module:attribute' → the attribute."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"expected 'module:attribute', got {path!r}")
    return getattr(importlib.import_module(module_name), attribute)


def configured_sources(settings: Settings) -> set[str]:
    """The shared source names this installation can use (domain.tiers): what a tier's sources are
    narrowed to at quote and submit. Each source that needs configuration adds itself here."""
    configured = {"osm"}  # the local index (and live OpenStreetMap) needs no key
    if google_places.spec(settings) is not None:  # the same test build_pipeline makes
        configured.add("google")
    return configured


def build_pipeline(db: Database, settings: Settings, gate: Gate = PASS_THROUGH) -> Pipeline:
    enrichers: list[Enricher] = [OsmEmail()]
    for path in settings.extra_enrichers:
        factory = load_object(path)
        enrichers.append(factory())  # type: ignore[operator]
    sources: list[DiscoverySource] = [OsmPlacesSource(db, settings)]  # settings: live OpenStreetMap too
    if google_places.spec(settings) is not None:  # a paid source: used by the tiers that allow it
        sources.append(google_places.GooglePlacesSource(settings))
    return Pipeline(
        sources=sources,
        enrichers=enrichers,
        enrich_concurrency=settings.enrich_concurrency,
        enrich_step_timeout=settings.enrich_step_timeout,
        gate=gate,
    )


def run_campaign(run: JobRun, pipeline: Pipeline) -> None:
    try:
        run.checkpoint()
        if not run.job.stage_done(Stage.initializing):
            initialize(run)
        steps: tuple[tuple[Stage, Callable[[], None]], ...] = (
            (Stage.discovering_businesses, lambda: discover.run(run, pipeline.sources, pipeline.gate)),
            (Stage.scoring_businesses, lambda: qualify.run(run)),
            (
                Stage.enriching_contacts,
                lambda: enrich.run(
                    run,
                    pipeline.enrichers,
                    pipeline.enrich_concurrency,
                    step_timeout=pipeline.enrich_step_timeout,
                    gate=pipeline.gate,
                ),
            ),
        )
        for current, step in steps:
            run.checkpoint()
            if not run.job.stage_done(current):
                step()
        run.checkpoint()
        results.store(run, final_status=JobStatus.completed)
    except CancelRequested:
        results.store(run, final_status=JobStatus.cancelled)
    except Exception as exc:
        # A cancel request wins over the retry of a failed attempt: the job
        # ends cancelled, keeping the leads enriched so far.
        if not ends_in_cancel(run, exc):
            raise
        results.store(run, final_status=JobStatus.cancelled)


def initialize(run: JobRun) -> None:
    campaign = stage.config(run)  # a config the stages cannot read fails here, before any work
    stage.finish(run, Stage.initializing, metrics={"requested": campaign.max_results, "total_cost": "0"})
