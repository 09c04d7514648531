"""The PostgREST-style read surface (/rest/v1): PostgREST's answers, the original's columns, owner scope."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.compat.conftest import Compat

SINGLE = {"Accept": "application/vnd.pgrst.object+json"}


def get(client: httpx.Client, path: str, **headers: str) -> httpx.Response:
    return client.get(path, headers=headers)


def assert_pgrst_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "details", "hint"}, body
    assert body["code"] == code, body
    return dict(body)


def test_job_row_has_the_original_columns_and_numeric_money(compat: Compat) -> None:
    with compat.client(compat.alice) as c:
        rows = get(c, f"/rest/v1/discovery_jobs?id=eq.{compat.job_id}&select=*").json()
    [job] = rows
    assert list(job) == [
        "id", "campaign_id", "user_id", "session_user_id", "status", "progress", "current_stage",
        "config", "results", "metrics", "error", "created_at", "started_at", "completed_at", "updated_at",
    ]  # fmt: skip
    assert job["id"] == compat.job_id and job["campaign_id"] == compat.campaign_id
    assert job["status"] == "completed" and job["progress"] == 100
    assert isinstance(job["metrics"]["total_cost"], float)
    assert job["metrics"]["leads"] == 3 and isinstance(job["metrics"]["avg_confidence"], (int, float))
    assert job["config"]["businessType"] == "cafe" and job["config"]["budgetLimit"] == 5.0
    assert job["created_at"].endswith("+00:00") and job["completed_at"] >= job["started_at"] >= job["created_at"]


def test_the_test_script_reads(compat: Compat) -> None:
    with compat.client(compat.alice) as c:
        [job] = get(
            c, f"/rest/v1/discovery_jobs?id=eq.{compat.job_id}&select=status,progress,current_stage,metrics"
        ).json()
        [campaign] = get(c, f"/rest/v1/campaigns?id=eq.{compat.campaign_id}&select=*").json()
        leads = get(
            c, f"/rest/v1/leads?campaign_id=eq.{compat.campaign_id}&select=business_name,email,confidence_score"
        )
    assert set(job) == {"status", "progress", "current_stage", "metrics"}
    assert campaign["results_count"] == 3 and isinstance(campaign["total_cost"], float)
    assert campaign["target_count"] == 3 and campaign["business_type"] == "cafe"
    assert leads.status_code == 200 and leads.headers["content-range"] == "0-2/*"
    assert [set(lead) for lead in leads.json()] == [{"business_name", "email", "confidence_score"}] * 3


def test_filters_order_limit_offset(compat: Compat) -> None:
    base = f"/rest/v1/leads?campaign_id=eq.{compat.campaign_id}"
    with compat.client(compat.alice) as c:
        names = [r["business_name"] for r in get(c, f"{base}&select=business_name&order=business_name.asc").json()]
        assert names == sorted(names) and len(names) == 3
        desc = get(c, f"{base}&select=business_name&order=business_name.desc").json()
        assert [r["business_name"] for r in desc] == names[::-1]
        page = get(c, f"{base}&select=business_name&order=business_name.asc&limit=1&offset=1")
        assert page.json() == [{"business_name": names[1]}] and page.headers["content-range"] == "1-1/*"
        assert len(get(c, f"{base}&business_name=neq.{names[0]}").json()) == 2
        quoted = ",".join(f'"{n}"' for n in names[:2])
        assert len(get(c, f"{base}&business_name=in.({quoted})").json()) == 2
        assert len(get(c, f"{base}&business_name=not.in.({quoted})").json()) == 1
        assert len(get(c, f"{base}&confidence_score=gte.0&confidence_score=lte.100").json()) == 3
        assert get(c, f"{base}&confidence_score=gt.100").json() == []
        assert len(get(c, f"{base}&email=not.is.null").json()) == 3
        assert get(c, f"{base}&email=is.null").json() == []
        assert len(get(c, f"{base}&validation_cost=lt.1.5").json()) == 3
        job = f"/rest/v1/discovery_jobs?id=eq.{compat.job_id}&select=id"
        assert len(get(c, f"{job}&created_at=gt.2000-01-01T00:00:00Z").json()) == 1
        assert get(c, f"{job}&created_at=lt.2000-01-01T00:00:00%2B00:00").json() == []
        assert len(get(c, f"{job}&completed_at=not.is.null&error=is.null").json()) == 1
        aliased = get(c, f"/rest/v1/campaigns?id=eq.{compat.campaign_id}&select=leads_found:results_count").json()
        assert aliased == [{"leads_found": 3}]


def test_single_object(compat: Compat) -> None:
    with compat.client(compat.alice) as c:
        one = get(c, f"/rest/v1/discovery_jobs?id=eq.{compat.job_id}&select=id,status", **SINGLE)
        assert one.status_code == 200 and one.json() == {"id": compat.job_id, "status": "completed"}
        assert one.headers["content-type"].startswith("application/vnd.pgrst.object+json")
        none = assert_pgrst_error(get(c, f"/rest/v1/discovery_jobs?id=eq.{uuid.uuid4()}", **SINGLE), 406, "PGRST116")
        assert none["details"] == "The result contains 0 rows"
        many = assert_pgrst_error(
            get(c, f"/rest/v1/leads?campaign_id=eq.{compat.campaign_id}", **SINGLE), 406, "PGRST116"
        )
        assert many["details"] == "The result contains 3 rows"


def test_another_owners_ids_match_nothing(compat: Compat) -> None:
    with compat.client(compat.bob) as c:
        assert get(c, f"/rest/v1/discovery_jobs?id=eq.{compat.job_id}").json() == []
        assert get(c, f"/rest/v1/campaigns?id=eq.{compat.campaign_id}").json() == []
        assert get(c, f"/rest/v1/leads?campaign_id=eq.{compat.campaign_id}").json() == []
        assert get(c, "/rest/v1/leads").json() == []  # no filter: still only bob's own (none)
        assert_pgrst_error(get(c, f"/rest/v1/discovery_jobs?id=eq.{compat.job_id}", **SINGLE), 406, "PGRST116")
    with compat.client() as anonymous:
        assert get(anonymous, f"/rest/v1/discovery_jobs?id=eq.{compat.job_id}").json() == []


def test_only_apikey_header_is_an_identity(compat: Compat) -> None:
    with httpx.Client(base_url=compat.server.url, headers={"apikey": compat.alice}) as c:
        assert len(get(c, f"/rest/v1/discovery_jobs?id=eq.{compat.job_id}").json()) == 1
    with httpx.Client(base_url=compat.server.url, headers={"apikey": "ppk_not-a-key"}) as c:
        assert_pgrst_error(get(c, "/rest/v1/discovery_jobs"), 401, "PGRST301")


@pytest.mark.parametrize("method", ["POST", "PATCH", "PUT", "DELETE"])
def test_writes_are_refused(compat: Compat, method: str) -> None:
    with compat.client(compat.alice) as c:
        response = c.request(method, f"/rest/v1/discovery_jobs?id=eq.{compat.job_id}", json={"status": "failed"})
        assert_pgrst_error(response, 405, "PGRST117")
        assert get(c, f"/rest/v1/discovery_jobs?id=eq.{compat.job_id}&select=status").json() == [
            {"status": "completed"}
        ]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("/rest/v1/users", "42P01"),
        ("/rest/v1/api_calls?select=*", "42P01"),
        ("/rest/v1/discovery_jobs?select=owner_id", "42703"),  # ours, not the original's
        ("/rest/v1/discovery_jobs?select=id,checkpoint", "42703"),
        ("/rest/v1/discovery_jobs?lease_owner=eq.x", "42703"),
        ("/rest/v1/discovery_jobs?order=nope.asc", "42703"),
        ("/rest/v1/discovery_jobs?status=regex.x", "PGRST100"),
        ("/rest/v1/discovery_jobs?status=pending", "PGRST100"),
        ("/rest/v1/discovery_jobs?status=is.maybe", "PGRST100"),
        ("/rest/v1/discovery_jobs?order=status.sideways", "PGRST100"),
        ("/rest/v1/discovery_jobs?select=leads(*)", "PGRST100"),
        ("/rest/v1/discovery_jobs?limit=-1", "PGRST100"),
        ("/rest/v1/discovery_jobs?offset=ten", "PGRST100"),
        ("/rest/v1/discovery_jobs?id=in.(a", "PGRST100"),
        ("/rest/v1/discovery_jobs?id=eq.not-a-uuid", "22P02"),
        ("/rest/v1/discovery_jobs?progress=gt.half", "22P02"),
        ("/rest/v1/discovery_jobs?created_at=gt.yesterday", "22P02"),
        ("/rest/v1/campaigns?total_cost=gt.NaN", "22P02"),
        ("/rest/v1/discovery_jobs?metrics=eq.{}", "42883"),
        ("/rest/v1/discovery_jobs?order=metrics.desc", "42883"),
        ("/rest/v1/discovery_jobs?progress=like.1*", "42883"),
    ],
)
def test_bad_queries_answer_400_as_postgrest(compat: Compat, query: str, code: str) -> None:
    with compat.client(compat.alice) as c:
        assert_pgrst_error(get(c, query), 400, code)


def test_limit_is_capped_and_like_matches(compat: Compat) -> None:
    with compat.client(compat.alice) as c:
        assert len(get(c, "/rest/v1/leads?limit=999999999").json()) == 3
        rows = get(c, "/rest/v1/campaigns?business_type=ilike.CA*&select=business_type").json()
        assert rows == [{"business_type": "cafe"}]
        assert get(c, "/rest/v1/campaigns?business_type=like.CA*").json() == []
        assert get(c, "/rest/v1/discovery_jobs?results=is.null&select=results").json() == [{"results": None}]
        assert get(c, "/rest/v1/discovery_jobs?metrics=is.null").json() == []


def test_session_user_id_is_the_anonymous_sessions_label(compat: Compat) -> None:
    with compat.client() as anonymous:
        answer = anonymous.post(
            "/functions/v1/business-discovery-background",
            json={"businessType": "cafe", "location": "Helsinki", "maxResults": 1, "sessionUserId": "browser-42"},
        ).json()
    with compat.client(answer["sessionToken"]) as c:
        [job] = get(c, f"/rest/v1/discovery_jobs?id=eq.{answer['jobId']}&select=session_user_id,user_id").json()
        [campaign] = get(c, "/rest/v1/campaigns?session_user_id=eq.browser-42&select=id").json()
    assert job["session_user_id"] == "browser-42" and job["user_id"]
    assert campaign == {"id": answer["campaignId"]}
    with compat.client(compat.alice) as c:  # a label is no identity: alice's filter on it finds nothing
        assert get(c, "/rest/v1/discovery_jobs?session_user_id=eq.browser-42").json() == []


@pytest.mark.parametrize(
    "query",
    [
        "/rest/v1/campaigns?business_type=eq.%00",
        "/rest/v1/campaigns?business_type=like.%00*",
        "/rest/v1/campaigns?business_type=in.(%00,a)",
        "/rest/v1/campaigns?id=in.()",
        "/rest/v1/campaigns?limit=0",
        "/rest/v1/campaigns?select=",
        "/rest/v1/campaigns?select=,",
        "/rest/v1/campaigns?select=a:b:c",
        "/rest/v1/campaigns?order=",
        "/rest/v1/campaigns?order=.",
        "/rest/v1/campaigns?business_type=eq.",
        "/rest/v1/campaigns?business_type=not.",
        "/rest/v1/campaigns?business_type=not.not.eq.x",
        "/rest/v1/campaigns?created_at=gt.9999-12-31T23:59:59",
        "/rest/v1/campaigns?created_at=gt.0001-01-01",
        "/rest/v1/campaigns?created_at=gt.0001-01-01T00:00:00%2B05:00",
        "/rest/v1/campaigns?created_at=lt.9999-12-31T23:59:59-05:00",
        "/rest/v1/campaigns?total_cost=gt.1e-99999",
        "/rest/v1/campaigns?total_cost=gt.1e999999",
        "/rest/v1/campaigns?total_cost=lt.-99999999999999999999999",
        "/rest/v1/campaigns?results_count=eq.99999999999999999999",
        "/rest/v1/campaigns?offset=999999999",
        "/rest/v1/campaigns?%C3%A9=eq.1",
        "/rest/v1/%00",
        "/rest/v1/campaigns?business_type=eq.%F0%9F%98%80",
    ],
)
def test_odd_queries_never_fail_the_server(compat: Compat, query: str) -> None:
    with compat.client(compat.alice) as c:
        response = get(c, query)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert set(response.json()) == {"code", "message", "details", "hint"}
