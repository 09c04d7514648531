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
from prospectpro.providers import google_places, hunter, neverbounce, overture
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
    configured.add("website")  # the business's own site: free, needs no key, always available
    if google_places.spec(settings) is not None:  # the same test build_pipeline makes
        configured.add("google")
    if overture.enabled(settings):  # Overture Maps places: when a release's path is set
        configured.add("overture")
    if hunter.spec(settings) is not None:  # the paid contact steps: when their keys are set
        configured.add("hunter")
    if neverbounce.spec(settings) is not None:
        configured.add("neverbounce")
    return configured


def build_pipeline(db: Database, settings: Settings, gate: Gate = PASS_THROUGH) -> Pipeline:
    # The contact waterfall (pipeline/enrich.py): source data, website, Hunter, verification; extra steps after.
    enrichers: list[Enricher] = [OsmEmail(), enrich.WebsiteStep(settings), enrich.HunterStep(settings)]
    for path in settings.extra_enrichers:
        factory = load_object(path)
        enrichers.append(factory())  # type: ignore[operator]
    enrichers.append(enrich.VerifyStep(settings))
    sources: list[DiscoverySource] = [OsmPlacesSource(db, settings)]  # settings: live OpenStreetMap too
    if overture.enabled(settings):  # free, after OSM: merged with it in scoring (domain/identity.py)
        sources.append(overture.OverturePlacesSource(db, settings))
    if google_places.spec(settings) is not None:  # a paid source: used by the tiers that allow it
        sources.append(google_places.GooglePlacesSource(settings))
    return Pipeline(
        sources=sources,
        enrichers=enrichers,
        enrich_concurrency=enrich.contact_concurrency(settings),
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
