"""Stage 2: find candidate businesses and store them for this job."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from prospectpro.domain.business import Business
from prospectpro.domain.campaign import Stage
from prospectpro.domain.dedup import fingerprint
from prospectpro.jobs.run import JobRun
from prospectpro.pipeline import stage
from prospectpro.places.locations import Area
from prospectpro.providers.protocols import DiscoveryQuery, DiscoverySource
from prospectpro.store.schema import job_candidates
from prospectpro.store.upsert import insert_ignore


def run(run: JobRun, sources: Sequence[DiscoverySource]) -> None:
    stage.start(run, Stage.discovering_businesses)
    config = run.job.config
    query = DiscoveryQuery(
        tags=tuple(config["tags"]),
        type_name=config["business_type"],
        area=Area.from_dict(config["area"]),
    )
    found: list[Business] = []
    per_source: dict[str, int] = {}
    for source in sources:
        run.checkpoint()
        businesses = list(source.discover(query))
        per_source[source.name] = len(businesses)
        found.extend(businesses)

    job_id = run.lease.job_id

    def write(conn: Connection) -> None:
        rows = [
            {
                "job_id": job_id,
                "source": b.source,
                "source_id": b.source_id,
                "position": position,
                "fingerprint": fingerprint(b),
                "business": b.to_dict(),
            }
            for position, b in enumerate(found)
        ]
        if rows:
            insert_ignore(conn, job_candidates, rows, ["job_id", "source", "source_id"])

    stage.finish(
        run,
        Stage.discovering_businesses,
        metrics={"businesses_found": len(found), "total_found": len(found), "sources": per_source},
        write=write,
    )

