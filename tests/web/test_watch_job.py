"""watch-job.js on its own, in Chromium, against a scripted EventSource and fetch:
the edge cases a live server rarely shows on cue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from prospectpro.web.pages import STATIC_DIR

FAKES = """
window.FakeES = class {
  constructor(url) { this.url = url; this.handlers = {}; FakeES.all.push(this); }
  addEventListener(name, fn) { this.handlers[name] = fn; }
  close() { this.closed = true; }
  snapshot(data) { this.handlers.snapshot({ data: JSON.stringify(data) }); }
  event(seq, data) { this.onmessage({ data: JSON.stringify({ seq, kind: "k", data, created_at: "t" }) }); }
  fail() { this.onerror && this.onerror(new Event("error")); }
};
FakeES.all = [];
window.EventSource = FakeES;
window.polls = [];
window.answers = [];
window.fetch = (url, init) => {
  polls.push(url);
  const [status, body] = answers.length > 1 ? answers.shift() : answers[0];
  return Promise.resolve({ ok: status < 300, status, json: () => Promise.resolve(body) });
};
window.run = (jobId, options) => {
  window.seen = [];
  window.modes = [];
  window.watcher = watchJob(jobId, (s) => seen.push(s), Object.assign(
    { onConnection: (mode, info) => modes.push(info.message ? mode + ": " + info.message : mode) }, options));
};
"""


@pytest.fixture
def js(page: Any) -> Any:
    page.set_content("<!doctype html><title>watch-job</title>")
    page.add_script_tag(content=FAKES)
    page.add_script_tag(content=Path(STATIC_DIR, "watch-job.js").read_text())
    return page


def states(page: Any) -> list[list[Any]]:
    return page.evaluate("() => seen.map(s => [s.seq, s.progress, s.status, s.live])")


def test_replayed_and_repeated_events_are_applied_once_in_order(js: Any) -> None:
    js.evaluate("""() => {
      run("job-1", { baseUrl: "https://pp.example/" });
      const es = FakeES.all[0];
      es.snapshot({ status: "processing", progress: 60 });  // no seq: not drawn over the replay
      es.event(1, { status: "pending", progress: 0 });
      es.event(2, { status: "processing", progress: 10 });
      es.event(2, { status: "processing", progress: 10 });
      es.event(1, { status: "pending", progress: 0 });
      es.event(3, { status: "processing", progress: 60 });
    }""")
    assert js.evaluate("() => FakeES.all[0].url") == "https://pp.example/api/v1/jobs/job-1/events?after=0"
    assert states(js) == [[1, 0, "pending", True], [2, 10, "processing", True], [3, 60, "processing", True]]
    assert js.evaluate("() => modes") == ["connecting", "live"]


def test_a_drop_reconnects_after_the_last_applied_seq(js: Any) -> None:
    js.evaluate("""() => {
      run("job-1", { after: 4, retryMs: 10 });
      const es = FakeES.all[0];
      es.snapshot({ status: "processing", progress: 50 });
      es.event(5, { status: "processing", progress: 55 });
      es.fail();
    }""")
    js.wait_for_function("() => FakeES.all.length === 2")
    assert js.evaluate("() => FakeES.all.map(s => [s.url, !!s.closed])") == [
        ["/api/v1/jobs/job-1/events?after=4", True],
        ["/api/v1/jobs/job-1/events?after=5", False],
    ]
    js.evaluate("""() => {
      const es = FakeES.all[1];
      es.snapshot({ status: "completed", progress: 100 });
      es.event(5, { status: "processing", progress: 55 });
      es.event(6, { status: "completed", progress: 100, summary: "Found 2 leads." });
    }""")
    assert states(js) == [[5, 55, "processing", True], [6, 100, "completed", True]]
    assert js.evaluate("() => modes") == ["connecting", "live", "reconnecting", "live", "closed"]
    assert js.evaluate("() => FakeES.all[1].closed")


def test_a_finished_job_with_nothing_after_the_position_ends_with_the_snapshot(js: Any) -> None:
    js.evaluate("""() => {
      run("job-1", { after: 9 });
      const es = FakeES.all[0];
      es.snapshot({ status: "completed", progress: 100, metrics: { leads: 3, requested: 5, summary: "Found 3 of 5 requested leads: the sources have no more that qualify." } });
      es.fail();  // the server ended the stream
    }""")
    assert states(js) == [[9, 100, "completed", True]]
    assert js.evaluate("() => seen[0].summary") == (
        "Found 3 of 5 requested leads: the sources have no more that qualify."
    )
    assert js.evaluate("() => FakeES.all.length") == 1  # no reconnect loop


def test_polls_when_the_stream_fails_before_any_message(js: Any) -> None:
    js.evaluate("""() => {
      answers.push([200, { status: "processing", progress: 40, metrics: {} }],
                   [200, { status: "processing", progress: 40, metrics: {} }],
                   [503, {}],
                   [200, { status: "completed", progress: 100, metrics: { leads: 2, requested: 2, summary: "Found 2 leads." } }]);
      run("job-1", { pollMs: 20 });
      FakeES.all[0].fail();
    }""")
    js.wait_for_function("() => seen.length === 2")
    assert states(js) == [[None, 40, "processing", False], [None, 100, "completed", False]]
    assert js.evaluate("() => seen[1].summary") == "Found 2 leads."
    assert js.evaluate("() => modes") == ["connecting", "polling", "offline", "polling", "closed"]
    assert js.evaluate("() => polls[0]") == "/api/v1/jobs/job-1"


def test_polls_when_the_stream_stays_silent(js: Any) -> None:
    js.evaluate("""() => {
      answers.push([200, { status: "processing", progress: 70, metrics: {} }]);
      run("job-1", { openTimeoutMs: 50, pollMs: 10000 });
    }""")
    js.wait_for_function("() => seen.length === 1")
    assert js.evaluate("() => [modes, FakeES.all[0].closed]") == [["connecting", "polling"], True]
    js.evaluate("() => watcher.close()")
    assert js.evaluate("() => modes[modes.length - 1]") == "closed"


def test_a_job_that_is_gone_says_so_and_stops(js: Any) -> None:
    js.evaluate("""() => {
      answers.push([404, { error: { code: "not_found", message: "job job-1 not found" } }]);
      run("job-1", { pollMs: 10 });
      FakeES.all[0].fail();
    }""")
    js.wait_for_function("() => modes.length === 3")
    js.wait_for_timeout(50)
    assert js.evaluate("() => [modes, polls.length, seen.length]") == [
        ["connecting", "polling", "error: job job-1 not found"],
        1,
        0,
    ]
