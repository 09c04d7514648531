"""Overpass failing in each way its docs describe: the job completes, names the failed source, no traceback."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from prospectpro.jobs.worker import Worker
from prospectpro.providers import overpass
from tests.live_osm.conftest import World, leads_of, submit, wait_until_done
from tests.sim.overpass import remark_answer
from tests.sim.server import SimResponse

HTML_400 = (
    '<html><body><p><strong style="color:#FF0000">Error</strong>: line 1: parse error: ";" expected</p></body></html>'
)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(overpass, "BACKOFF_BASE_S", 0.01)


@pytest.mark.parametrize(
    ("fault", "times", "reason"),
    [
        (remark_answer(), 1, "timeout: the server stopped the query: runtime error: Query timed out"),
        (remark_answer("runtime error: Query run out of memory using about 2048 MB of RAM."), 1, "unavailable:"),
        (SimResponse(504, "<html>Gateway Timeout</html>"), 3, "unavailable: HTTP 504"),
        (SimResponse(200, "<html>not json</html>"), 1, "malformed: the answer is not JSON"),
        (SimResponse(200, {"elements": "none"}), 1, "malformed: the answer has no list of elements"),
        (SimResponse(200, b'{"elements": [{"type": "node", "id": 1}]}', truncate_to=10), 3, "malformed"),
        (SimResponse(400, HTML_400), 1, "bad_request: HTTP 400: the query was refused: line 1: parse error"),
    ],
)
def test_an_overpass_failure_ends_in_failed_sources(
    world: World, run_worker: Callable[[World], Worker], fault: SimResponse, times: int, reason: str
) -> None:
    world.sim.fail("/api/interpreter", fault, times=times)
    run_worker(world)
    done = wait_until_done(world.db, submit(world, "dentist", "Austin").id)
    assert done.status.value == "completed" and done.error is None
    [failed] = done.metrics["failed_sources"]
    assert failed["source"] == "osm" and failed["reason"].startswith(reason), failed
    assert "Traceback" not in failed["reason"]
    assert leads_of(world.db, done) == []
    # Nothing was recorded as covered: the next campaign asks again, and gets the answer.
    again = wait_until_done(world.db, submit(world, "dentist", "Austin").id)
    assert again.metrics["failed_sources"] == [] and again.metrics["source_counts"] == {"osm": 3}


def test_a_429_checks_the_status_then_asks_again(world: World, run_worker: Callable[[World], Worker]) -> None:
    world.sim.fail("/api/interpreter", SimResponse(429, "<html>Too Many Requests</html>"), times=1)
    world.overpass.status_text = "Rate limit: 2\nSlot available after: 2026-12-02T00:00:01Z, in 0 seconds.\n"
    run_worker(world)
    done = wait_until_done(world.db, submit(world, "dentist", "Austin").id)
    assert done.metrics["failed_sources"] == [] and done.metrics["source_counts"] == {"osm": 3}
    paths = [c.path for c in world.sim.calls if c.path.startswith("/api/")]
    assert paths == ["/api/interpreter", "/api/status", "/api/interpreter"]


def test_a_429_with_no_slot_soon_fails_the_source(world: World, run_worker: Callable[[World], Worker]) -> None:
    world.sim.fail("/api/interpreter", SimResponse(429, "busy"), times=5)
    world.overpass.status_text = "Rate limit: 2\nSlot available after: 2026-12-02T00:10:00Z, in 600 seconds.\n"
    run_worker(world)
    done = wait_until_done(world.db, submit(world, "dentist", "Austin").id)
    [failed] = done.metrics["failed_sources"]
    assert failed["source"] == "osm" and failed["reason"].startswith("rate_limited: HTTP 429")
    assert world.sim.count("/api/status") == 1 and world.sim.count("/api/interpreter") == 1


def test_overpass_unreachable_fails_the_source(world: World, run_worker: Callable[[World], Worker]) -> None:
    world.sim.fail("/api/interpreter", SimResponse(close_without_answer=True), times=10)
    run_worker(world)
    done = wait_until_done(world.db, submit(world, "dentist", "Austin").id)
    assert done.status.value == "completed"
    assert done.metrics["failed_sources"][0]["reason"].startswith("unavailable:")


def test_a_pipeline_without_a_gate_fails_the_source_not_the_job(world: World) -> None:
    from decimal import Decimal

    from prospectpro.domain.campaign import Tier
    from prospectpro.gate.errors import ProviderError
    from prospectpro.providers.nominatim import to_area
    from prospectpro.providers.osm import OsmPlacesSource
    from prospectpro.providers.protocols import CallContext, DiscoveryQuery
    from tests.live_osm.conftest import AUSTIN

    area = to_area(AUSTIN, world.settings)
    ctx = CallContext(job_id="j", owner_id="o", tier=Tier.base, wanted=5, budget_limit=Decimal("0"))  # PASS_THROUGH
    with pytest.raises(ProviderError, match="not configured"):
        OsmPlacesSource(world.db, world.settings).discover(
            DiscoveryQuery(("amenity=dentist",), "dentist", area, 5), ctx
        )
