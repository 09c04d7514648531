"""Stage 2: find candidate businesses and store them for this job."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from prospectpro.domain.business import Business
from prospectpro.domain.campaign import Stage
from prospectpro.jobs.run import JobRun
from prospectpro.pipeline import stage
from prospectpro.providers.protocols import PASS_THROUGH, DiscoveryQuery, DiscoverySource, Gate
from prospectpro.store.candidates import insert_candidates


def run(run: JobRun, sources: Sequence[DiscoverySource], gate: Gate = PASS_THROUGH) -> None:
    stage.start(run, Stage.discovering_businesses)
    campaign = stage.config(run)
    query = DiscoveryQuery(
        tags=campaign.tags, type_name=campaign.business_type, area=campaign.area, wanted=campaign.max_results
    )
    # Every source is told the whole need: what one found is not yet scored,
    # merged or checked against earlier deliveries, so it does not lower it.
    ctx = stage.call_context(run, campaign, wanted=campaign.max_results, gate=gate)
    found: list[Business] = []
    per_source: dict[str, int] = {}
    for source in sources:
        run.checkpoint()
        businesses = list(source.discover(query, ctx))
        per_source[source.name] = len(businesses)
        found.extend(businesses)

    job_id = run.lease.job_id

    def write(conn: Connection) -> None:
        insert_candidates(conn, job_id, found)

    stage.finish(
        run,
        Stage.discovering_businesses,
        metrics={"businesses_found": len(found), "total_found": len(found), "sources": per_source},
        write=write,
    )
