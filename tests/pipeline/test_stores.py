"""The candidates and leads stores: each query scoped by the job or the owner it names."""

from __future__ import annotations

from decimal import Decimal

from prospectpro.domain.business import Business
from prospectpro.domain.clock import utcnow
from prospectpro.pipeline.results import lead_row
from prospectpro.providers.protocols import Enrichment
from prospectpro.services.users import create_user
from prospectpro.store import candidates, leads
from prospectpro.store.db import Database
from prospectpro.store.schema import LOCAL_USER_ID
from prospectpro.store.schema import leads as leads_table
from tests.support import make_job


def business(n: int) -> Business:
    return Business(source="osm", source_id=f"node/{n}", name=f"Cafe {n}", city="Helsinki", phone="+358 40 123 456")


def test_candidates_are_read_and_written_through_their_job_only(any_db: Database) -> None:
    mine, theirs = make_job(any_db), make_job(any_db)
    with any_db.write() as conn:
        candidates.insert_candidates(conn, mine.id, [business(1), business(2)])
        candidates.insert_candidates(conn, theirs.id, [business(3)])
        candidates.insert_candidates(conn, mine.id, [business(1)])  # found again: kept as it was
    with any_db.read() as conn:
        loaded = candidates.load_for_scoring(conn, mine.id)
        [other] = candidates.load_for_scoring(conn, theirs.id)
    assert [(c.position, c.business.name) for c in loaded] == [(0, "Cafe 1"), (1, "Cafe 2")]
    for c in loaded:
        c.selected, c.score, c.breakdown = True, 60, {"name": 60}
    other.selected, other.score = True, 99
    with any_db.write() as conn:
        candidates.store_scores(conn, mine.id, [*loaded, other])  # the other job's row is not this job's to write
        candidates.mark_delivered_before(conn, mine.id, [other.id])
        for c in loaded:
            candidates.record_enrichment(
                conn, theirs.id, c.id, enrichment={}, score=1, breakdown={}, cost=Decimal(9)
            )  # wrong job: nothing
        candidates.record_enrichment(
            conn, mine.id, loaded[0].id, enrichment=Enrichment(email="a@b.fi").to_dict(), score=70,
            breakdown={"email": 10}, cost=Decimal("0.25"),
        )  # fmt: skip
    with any_db.read() as conn:
        assert candidates.enrichment_progress(conn, mine.id) == (2, 1, Decimal("0.25"))
        assert candidates.enrichment_progress(conn, theirs.id) == (0, 0, Decimal(0))
        pending = candidates.pending_enrichment(conn, mine.id)
        assert [(cid, b.name) for cid, b in pending] == [(loaded[1].id, "Cafe 2")]
        [enriched] = candidates.enriched_for_leads(conn, mine.id, min_score=50)
        assert (enriched.id, enriched.score, enriched.enrichment["email"]) == (loaded[0].id, 70, "a@b.fi")
        assert candidates.enriched_for_leads(conn, mine.id, min_score=71) == []
        assert candidates.total_cost(conn, mine.id) == Decimal("0.25")
        assert candidates.total_cost(conn, theirs.id) == Decimal(0)
        [untouched] = candidates.load_for_scoring(conn, theirs.id)
    assert untouched.business.name == "Cafe 3"
    with any_db.read() as conn:
        assert candidates.pending_enrichment(conn, theirs.id) == []  # never selected: its score was not written


def test_leads_are_only_seen_through_their_owner(any_db: Database) -> None:
    other, _ = create_user(any_db, "other")
    job = make_job(any_db)
    assert job.campaign_id is not None
    row = {"dedup_key": "cafe 1|helsinki", **lead_row(business(1), Enrichment(email="a@b.fi"), 80, {"email": 10})}
    with any_db.write() as conn:
        leads.store_leads(conn, LOCAL_USER_ID, job.campaign_id, [row], utcnow())
        leads.store_leads(conn, LOCAL_USER_ID, job.campaign_id, [{**row, "confidence_score": 90}], utcnow())
        won = leads.claim_deliveries(conn, LOCAL_USER_ID, job.campaign_id, {"cafe 1|helsinki"}, utcnow())
    with any_db.read() as conn:
        rows, total = leads.list_leads(conn, LOCAL_USER_ID, job.campaign_id)
        assert total == 1 and rows[0].confidence_score == 90  # stored again: updated, not doubled
        assert leads.lead_stats(conn, LOCAL_USER_ID, job.campaign_id) == (1, 90.0)
        assert leads.list_leads(conn, other.user_id, job.campaign_id) == ([], 0)
        assert leads.lead_stats(conn, other.user_id, job.campaign_id) == (0, None)
        key = {"cafe 1|helsinki"}
        assert leads.delivered_keys(conn, LOCAL_USER_ID, "another campaign", key) == key
        assert leads.delivered_keys(conn, other.user_id, "another campaign", key) == set()
    assert won == {"cafe 1|helsinki"}


def test_one_lead_column_list_for_storing() -> None:
    row = lead_row(business(1), Enrichment(), 50, {})
    assert set(row) == set(leads.LEAD_COLUMNS)  # what the storing step writes
    assert set(leads.LEAD_COLUMNS) <= set(leads_table.c.keys())
