"""The pages in a real Chromium: submit, watch the bar live, reload and drops mid-run,
the polling fallback, the leads and their CSV."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.api.conftest import LiveServer

TIMEOUT_MS = 20_000
ENRICHING = (50, 90)


@pytest.fixture
def slow_server(make_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch) -> Callable[[float], LiveServer]:
    """A server whose enriching stage takes `delay` seconds per lead, one lead at a time."""

    def start(delay: float) -> LiveServer:
        monkeypatch.setenv("PROSPECTPRO_TEST_ENRICH_DELAY", str(delay))
        return make_server(extra_enrichers=["tests.plugins:SlowEnricher"], enrich_concurrency=1)

    return start


def start_campaign(page: Page, server: LiveServer, max_results: int = 20) -> str:
    page.goto(server.url + "/")
    page.get_by_label("Business type").fill("cafe")
    page.get_by_label("Location").fill("Helsinki")
    page.get_by_label("Max results").fill(str(max_results))
    page.get_by_role("button", name="Start campaign").click()
    page.wait_for_url("**/jobs/*")
    return page.url.rsplit("/", 1)[1]


def progress(page: Page) -> int:
    return int(page.get_attribute("#progress", "aria-valuenow") or 0)


def page_log(page: Page) -> dict[str, Any]:
    return page.evaluate("() => window.__jobPage")


def wait_for_progress(page: Page, at_least: int) -> None:
    page.wait_for_function(
        f"() => Number(document.getElementById('progress').getAttribute('aria-valuenow')) >= {at_least}",
        timeout=TIMEOUT_MS,
    )


def wait_completed(page: Page) -> None:
    expect(page.locator("#job")).to_have_attribute("data-status", "completed", timeout=TIMEOUT_MS)


def event_log(page: Page, server: LiveServer, job_id: str) -> list[dict[str, Any]]:
    """The job's whole event log, read with the page's own session cookie."""
    answer = page.request.get(f"{server.url}/api/v1/jobs/{job_id}/events?format=json&limit=1000")
    assert answer.ok
    return answer.json()["events"]


def assert_never_decreases(values: list[int]) -> None:
    assert all(a <= b for a, b in zip(values, values[1:])), values


def test_submit_watch_live_and_download_the_leads(page: Page, slow_server: Callable[[float], LiveServer]) -> None:
    server = slow_server(0.05)
    job_id = start_campaign(page, server)
    rendered_seq = int(page.get_attribute("#job", "data-seq") or 0)

    # Watch the bar as a user would, until it says completed.
    seen: list[int] = []
    labels: set[str] = set()
    deadline = time.monotonic() + 30
    while page.get_attribute("#job", "data-status") != "completed":
        assert time.monotonic() < deadline, (seen, labels)
        value = progress(page)
        if not seen or seen[-1] != value:
            seen.append(value)
        labels.add(page.inner_text("#stage-label"))
        page.wait_for_timeout(50)
    seen.append(progress(page))

    assert_never_decreases(seen)
    assert any(ENRICHING[0] < v < ENRICHING[1] for v in seen), seen
    assert seen[-1] == 100
    assert "Enriching contact information…" in labels, labels
    expect(page.locator("#stage-label")).to_have_text("Completed")
    expect(page.locator("#connection")).not_to_contain_text("unavailable")

    # Every update the page applied, in order, once: the event log after what the server rendered.
    log = page_log(page)
    assert_never_decreases(log["progress"])
    assert any(ENRICHING[0] < v < ENRICHING[1] for v in log["progress"]) and log["progress"][-1] == 100
    events = event_log(page, server, job_id)
    assert log["seqs"] == [e["seq"] for e in events if e["seq"] > rendered_seq]
    assert events[-1]["kind"] == "completed"

    expect(page.locator("#summary")).to_have_text("Found 20 leads.")
    expect(page.locator("#m-enriched")).to_have_text("20 / 20")
    expect(page.locator("#cancel-form")).to_be_hidden()

    # The leads: best first, each with its breakdown; sortable; the CSV.
    page.get_by_role("link", name="See the leads").click()
    page.wait_for_url("**/campaigns/*")
    rows = page.locator("#leads tbody tr")
    expect(rows).to_have_count(20)
    scores = [int(s) for s in rows.evaluate_all("rows => rows.map(r => r.dataset.score)")]
    assert scores == sorted(scores, reverse=True)
    expect(rows.first.locator(".breakdown")).to_contain_text("address")
    expect(rows.first.locator(".breakdown")).to_contain_text("/25")
    expect(page.locator("footer")).to_contain_text("© OpenStreetMap contributors, ODbL")

    page.get_by_role("button", name="Score").click()  # best first → worst first
    expect(page.locator("th[data-sort=score]")).to_have_attribute("aria-sort", "ascending")
    ascending = [int(s) for s in rows.evaluate_all("rows => rows.map(r => r.dataset.score)")]
    assert ascending == sorted(scores)

    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    data = open(download.value.path(), "rb").read()
    assert data.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert table[0][0] == "business_name"
    assert len(table) == 1 + 20


def test_reload_mid_run_catches_up_without_repeats_or_gaps(
    page: Page, slow_server: Callable[[float], LiveServer]
) -> None:
    server = slow_server(0.1)
    job_id = start_campaign(page, server)
    wait_for_progress(page, 55)
    before = page_log(page)
    value_before = progress(page)
    assert value_before < ENRICHING[1], "the job finished before the reload: make it slower"

    page.reload()
    rendered_seq = int(page.get_attribute("#job", "data-seq") or 0)
    assert rendered_seq >= max(before["seqs"])
    assert progress(page) >= value_before  # right before the script runs
    wait_completed(page)

    after = page_log(page)
    events = event_log(page, server, job_id)
    terminal = events[-1]
    assert terminal["kind"] == "completed"
    assert after["seqs"], "the page applied nothing live after the reload"
    assert after["seqs"] == list(range(rendered_seq + 1, terminal["seq"] + 1))
    assert_never_decreases([value_before, *after["progress"]])
    assert after["progress"][-1] == 100


def test_a_dropped_stream_resumes_where_it_stopped(page: Page, slow_server: Callable[[float], LiveServer]) -> None:
    server = slow_server(0.1)
    # Keep a handle on the page's EventSources, to cut one as a network drop would.
    page.add_init_script(
        """(() => {
          const Native = window.EventSource;
          window.__sources = [];
          window.EventSource = function (url, init) {
            const source = new Native(url, init);
            window.__sources.push(source);
            return source;
          };
          window.EventSource.prototype = Native.prototype;
        })();"""
    )
    job_id = start_campaign(page, server)
    rendered_seq = int(page.get_attribute("#job", "data-seq") or 0)
    wait_for_progress(page, 55)
    last_applied = page.evaluate(
        """() => {
          const source = window.__sources[window.__sources.length - 1];
          source.close();
          source.dispatchEvent(new Event("error"));
          return window.__jobPage.seqs[window.__jobPage.seqs.length - 1];
        }"""
    )
    expect(page.locator("#connection")).to_have_text("Connection lost — reconnecting…")
    wait_completed(page)

    urls = page.evaluate("() => window.__sources.map(s => s.url)")
    assert len(urls) == 2 and urls[1].endswith(f"after={last_applied}")
    log = page_log(page)
    events = event_log(page, server, job_id)
    assert log["seqs"] == list(range(rendered_seq + 1, events[-1]["seq"] + 1))
    assert_never_decreases(log["progress"])


def test_polling_fallback_when_the_stream_is_blocked(page: Page, slow_server: Callable[[float], LiveServer]) -> None:
    server = slow_server(0.1)
    page.route("**/events*", lambda route: route.abort())
    start_campaign(page, server)
    expect(page.locator("#connection")).to_have_text(
        "Live updates unavailable — refreshing every 3 s", timeout=TIMEOUT_MS
    )
    wait_completed(page)
    assert progress(page) == 100
    expect(page.locator("#summary")).to_have_text("Found 20 leads.")
    log = page_log(page)
    assert_never_decreases(log["progress"])
    assert log["seqs"] == []  # nothing came from the stream


def test_polling_fallback_when_the_stream_stays_silent(
    page: Page, slow_server: Callable[[float], LiveServer]
) -> None:
    """A proxy that buffers the stream: it opens but no message arrives."""
    server = slow_server(0.01)
    page.route("**/events*", lambda route: None)  # never answered, like a proxy holding the stream back
    started = time.monotonic()
    start_campaign(page, server, max_results=5)
    wait_completed(page)
    assert time.monotonic() - started < 12  # ~5 s of silence, then the first poll
    expect(page.locator("#summary")).to_have_text("Found 5 leads.")
    assert page_log(page)["connection"][:2] == ["connecting", "polling"]
