"""The server-rendered pages over plain HTTP: sessions, the no-JS form, 404s, escaping."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from prospectpro.domain.campaign import STAGE_LABELS, Stage
from tests.api.conftest import LiveServer

FORM = {"business_type": "cafe", "location": "Helsinki", "max_results": "3", "budget_limit": "5", "min_score": "50"}


@contextmanager
def visit_home(server: LiveServer) -> Iterator[httpx.Client]:
    """A browser-like client: cookies only, its session created by the home page."""
    with server.client() as client:
        answer = client.get("/")
        assert answer.status_code == 200 and answer.cookies.get("pp_session")
        yield client


def submit(client: httpx.Client, **fields: str) -> httpx.Response:
    return client.post("/campaigns", data={**FORM, **fields})


def job_id_of(answer: httpx.Response) -> str:
    assert answer.status_code == 303, answer.text
    match = re.fullmatch(r"/jobs/([0-9a-f-]{36})", answer.headers["location"])
    assert match, answer.headers["location"]
    return match.group(1)


def wait_done(client: httpx.Client, job_id: str) -> dict:
    deadline = time.monotonic() + 30
    while (job := client.get(f"/api/v1/jobs/{job_id}").json())["status"] not in ("completed", "failed", "cancelled"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    return job


def test_home_sets_the_session_cookie_and_shows_the_form(live_server: LiveServer) -> None:
    with live_server.client() as client:
        answer = client.get("/")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/html")
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith("pp_session=") and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
        html = answer.text
        for field in ("business_type", "location", "max_results", "budget_limit", "min_score"):
            assert f'<label for="{field}"' in html and f'id="{field}"' in html
        assert '<datalist id="business-types">' in html and '<option value="cafe" label="Cafe">' in html
        assert '<option value="Helsinki">' in html
        assert "No campaigns yet" in html
        assert "© <a" in html and "OpenStreetMap contributors</a>, <abbr" in html
        # The session sticks: a second visit creates no new one.
        again = client.get("/")
        assert "set-cookie" not in again.headers


def test_home_lists_only_this_sessions_campaigns_newest_first(live_server: LiveServer) -> None:
    with visit_home(live_server) as mine, visit_home(live_server) as theirs:
        first = job_id_of(submit(mine, business_type="cafe"))
        second = job_id_of(submit(mine, business_type="dentist"))
        other = job_id_of(submit(theirs))
        html = mine.get("/").text
        assert first in html and second in html and other not in html
        assert html.index(second) < html.index(first)  # newest first
        assert "Dentist in Helsinki" in html and "Cafe in Helsinki" in html
        wait_done(mine, first)
        html = mine.get("/").text
        row = html[html.index(f'data-job-id="{first}"') :].split("</tr>")[0]
        assert "Completed" in row and 'value="100"' in row and "/campaigns/" in row


def test_the_form_without_javascript_redirects_to_the_job_page(live_server: LiveServer) -> None:
    with live_server.client() as client:  # no visit to / first: the POST creates the session
        answer = submit(client)
        job_id = job_id_of(answer)
        assert answer.cookies.get("pp_session")
        page = client.get(f"/jobs/{job_id}")
        assert page.status_code == 200
        html = page.text
        assert "Cafe in Helsinki" in html
        assert 'role="progressbar"' in html and 'aria-valuenow="' in html
        assert f'data-job-id="{job_id}"' in html and 'src="/static/watch-job.js' in html
        job = wait_done(client, job_id)
        html = client.get(f"/jobs/{job_id}").text
        assert 'aria-valuenow="100"' in html and "Found 3 leads." in html
        assert f'href="/campaigns/{job["campaign_id"]}"' in html
        assert f'data-seq="{client.get(f"/api/v1/jobs/{job_id}/events?format=json").json()["next_after"]}"' in html


def test_a_bad_form_is_shown_again_with_the_message(live_server: LiveServer) -> None:
    with visit_home(live_server) as client:
        empty = submit(client, business_type="  ", location="Helsinki", max_results="7")
        assert empty.status_code == 422
        assert "business type must not be empty" in empty.text and 'role="alert"' in empty.text
        assert 'value="7"' in empty.text  # what was typed stays
        unknown = submit(client, location="Atlantis")
        assert unknown.status_code == 422
        assert "unknown location &#39;Atlantis&#39;" in unknown.text
        assert 'value="Atlantis"' in unknown.text
        too_many = submit(client, max_results="100000")
        assert too_many.status_code == 422 and "max results must be at most 10000" in too_many.text
        nonsense = submit(client, min_score="lots")
        assert nonsense.status_code == 422 and "minimum score" in nonsense.text
        assert "No campaigns yet" in client.get("/").text  # nothing was created


def test_a_rejected_form_opens_no_session(live_server: LiveServer) -> None:
    with live_server.client() as client:
        for fields in ({"business_type": ""}, {"business_type": "caffe"}, {"location": "Atlantis"}):
            answer = submit(client, **fields)
            assert answer.status_code == 422 and "set-cookie" not in answer.headers, fields
        assert "Did you mean: cafe?" in submit(client, business_type="caffe").text


def test_everything_shown_is_escaped(live_server: LiveServer) -> None:
    with visit_home(live_server) as client:
        answer = submit(client, business_type="<script>alert(1)</script>", location='"><img src=x onerror=alert(2)>')
        assert answer.status_code == 422
        assert "<script>alert(1)" not in answer.text and "&lt;script&gt;alert(1)" in answer.text
        assert "<img src=x" not in answer.text
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_another_session_gets_the_not_found_page(live_server: LiveServer) -> None:
    with visit_home(live_server) as owner, visit_home(live_server) as stranger, live_server.client() as anonymous:
        job_id = job_id_of(submit(owner))
        campaign_id = wait_done(owner, job_id)["campaign_id"]
        assert owner.get(f"/jobs/{job_id}").status_code == 200
        assert owner.get(f"/campaigns/{campaign_id}").status_code == 200
        for client in (stranger, anonymous):
            for path in (f"/jobs/{job_id}", f"/campaigns/{campaign_id}", "/jobs/nope", "/campaigns/nope"):
                answer = client.get(path)
                assert answer.status_code == 404, path
                assert answer.headers["content-type"].startswith("text/html")
                assert "couldn’t find that" in answer.text
                assert job_id not in answer.text and campaign_id not in answer.text
        assert "set-cookie" not in anonymous.get(f"/jobs/{job_id}").headers  # reading creates no session
        # Nor can a stranger cancel it through the no-JS form.
        assert stranger.post(f"/jobs/{job_id}/cancel").status_code == 404


def test_campaign_page_lists_the_leads_best_first_with_breakdown(live_server: LiveServer) -> None:
    with visit_home(live_server) as client:
        job_id = job_id_of(submit(client, max_results="5"))
        campaign_id = wait_done(client, job_id)["campaign_id"]
        html = client.get(f"/campaigns/{campaign_id}").text
        scores = [int(s) for s in re.findall(r'<tr data-score="(\d+)"', html)]
        assert len(scores) == 5 and scores == sorted(scores, reverse=True)
        assert re.search(r"address \d+/25</li>", html) and re.search(r"verified email \d+/10</li>", html)
        assert f'href="/api/v1/campaigns/{campaign_id}/leads.csv"' in html
        assert "OpenStreetMap contributors" in html and "ODbL" in html


def test_cancel_without_javascript(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(workers=0)  # nobody runs the job: it stays pending
    with visit_home(server) as client:
        job_id = job_id_of(submit(client))
        answer = client.post(f"/jobs/{job_id}/cancel")
        assert answer.status_code == 303 and answer.headers["location"] == f"/jobs/{job_id}"
        html = client.get(f"/jobs/{job_id}").text
        assert 'data-status="cancelled"' in html and "Cancelled" in html
        assert '<form method="post" action="/jobs/' + job_id + '/cancel" id="cancel-form" hidden>' in html


def _job_state(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="job-state">(.*?)</script>', html, re.S)
    assert match, html
    return json.loads(match.group(1))


# Regression: the stage labels were written out three times (the job model, this page, static/job-page.js,
# which also listed the stages in order); the page and its script now take both from the server.
def test_the_job_page_script_takes_the_stages_and_labels_from_the_server(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(workers=0)  # the job stays pending until cancelled
    with visit_home(server) as client:
        job_id = job_id_of(submit(client))
        html = client.get(f"/jobs/{job_id}").text
        assert f'data-stage-order="{" ".join(stage.value for stage in Stage)}"' in html
        assert _job_state(html)["stage_label"] == STAGE_LABELS[Stage.queued]
        client.post(f"/jobs/{job_id}/cancel")
        html = client.get(f"/jobs/{job_id}").text
        api = client.get(f"/api/v1/jobs/{job_id}").json()
        assert _job_state(html)["stage_label"] == api["stage_label"] == "Cancelled"
        script = client.get("/static/job-page.js").text
    for stage in Stage:
        assert f'"{stage.value}"' not in script and STAGE_LABELS[stage] not in script, stage
    for outcome in ("Completed", "Failed", "Cancelled"):
        assert f'"{outcome}"' not in script, outcome


def test_form_posts_from_other_sites_are_refused(live_server: LiveServer) -> None:
    with visit_home(live_server) as client:
        answer = client.post("/campaigns", data=FORM, headers={"Origin": "https://evil.example"})
        assert answer.status_code == 403
        assert "No campaigns yet" in client.get("/").text
        same = client.post("/campaigns", data=FORM, headers={"Origin": live_server.url})
        assert same.status_code == 303


def test_static_files_are_served(live_server: LiveServer) -> None:
    with live_server.client() as client:
        script = client.get("/static/watch-job.js")
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]
        assert "root.watchJob = watchJob" in script.text and "export " not in script.text
        assert "EventSource" in script.text and "innerHTML" not in script.text
        for name in ("style.css", "job-page.js", "campaign-page.js", "home.js"):
            assert client.get(f"/static/{name}").status_code == 200, name
        assert client.get("/static/nope.js").status_code == 404


def test_business_type_suggestions(live_server: LiveServer) -> None:
    with live_server.client() as client:
        assert "coffee shop" in client.get("/api/v1/business-types", params={"prefix": "coff"}).json()["types"]
        names = client.get("/api/v1/business-types", params={"limit": 50}).json()["types"]
        assert len(names) == 50 and "cafe" in names
        assert client.get("/api/v1/business-types", params={"limit": 0}).status_code == 422
