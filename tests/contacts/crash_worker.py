"""A worker process running the contact waterfall over listed businesses (test_waterfall's never-twice test).

``python -m tests.contacts.crash_worker`` with PROSPECTPRO_* settings in the environment and
CRASH_BUSINESSES=N: the businesses ``crash0.fi`` … have websites whose domains Hunter knows; no website step
(nothing here may resolve a real name), so Hunter and NeverBounce are the calls that count.
"""

from __future__ import annotations

import os
import threading

from prospectpro.bootstrap import build_gate, open_database
from prospectpro.config import Settings
from prospectpro.jobs.worker import Worker, worker_config
from prospectpro.pipeline import enrich
from prospectpro.pipeline.kind import campaign_kind
from prospectpro.pipeline.runner import Pipeline
from prospectpro.providers.osm_email import OsmEmail
from tests.contacts.waterfall_rig import Listed, business


def businesses(n: int) -> list[object]:
    return [business(i, f"https://crash{i}.fi/") for i in range(n)]


def main() -> None:
    settings = Settings()
    db = open_database(settings)
    gate = build_gate(db, settings)
    pipeline = Pipeline(
        sources=[Listed(businesses(int(os.environ["CRASH_BUSINESSES"])))],  # type: ignore[arg-type]
        enrichers=[OsmEmail(), enrich.HunterStep(settings), enrich.VerifyStep(settings)],
        enrich_concurrency=2,
        gate=gate,
    )
    Worker(db, [campaign_kind(pipeline)], worker_config(settings)).start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
