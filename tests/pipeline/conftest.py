from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from prospectpro.config import Settings
from prospectpro.domain.campaign import CampaignRequest
from prospectpro.jobs.events import follow_events
from prospectpro.jobs.model import Job
from prospectpro.jobs.queue import get_job
from prospectpro.jobs.worker import Worker, WorkerConfig
from prospectpro.pipeline.kind import campaign_kind
from prospectpro.pipeline.runner import Pipeline
from prospectpro.places.importer import ensure_bundled_places
from prospectpro.providers.osm import OsmPlacesSource
from prospectpro.providers.osm_email import OsmEmail
from prospectpro.providers.protocols import Enricher
from prospectpro.services.submissions import submit_campaign
from prospectpro.store.db import Database
from prospectpro.store.schema import LOCAL_USER_ID


@pytest.fixture
def places_db(db: Database) -> Database:
    ensure_bundled_places(db)
    return db


def make_pipeline(db: Database, *extra: Enricher, concurrency: int = 2) -> Pipeline:
    return Pipeline(sources=[OsmPlacesSource(db)], enrichers=[OsmEmail(), *extra], enrich_concurrency=concurrency)


def submit(db: Database, settings: Settings | None = None, **fields: object) -> Job:
    request = CampaignRequest.model_validate({"business_type": "cafe", "location": "Helsinki", **fields})
    return submit_campaign(db, settings or Settings(), LOCAL_USER_ID, request).job


@pytest.fixture
def run_worker() -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(db: Database, pipeline: Pipeline, **config: object) -> Worker:
        worker_config = WorkerConfig(**{"lease_seconds": 5.0, "poll_interval": 0.05, **config})
        worker = Worker(db, [campaign_kind(pipeline)], worker_config)
        started.append(worker.start())
        return worker

    yield start
    for worker in started:
        if not worker.stopped:
            worker.stop(timeout=10)


def wait_until_done(db: Database, job_id: str, timeout: float = 60.0) -> Job:
    stop = threading.Event()
    timer = threading.Timer(timeout, stop.set)
    timer.start()
    try:
        for _ in follow_events(db, job_id, poll_interval=0.05, stop=stop):
            pass
    finally:
        timer.cancel()
    job = get_job(db, job_id)
    assert job.status.terminal, f"job still {job.status} after {timeout}s"
    return job
