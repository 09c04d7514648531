"""Google's content terms in the store, on both databases: lead rows carry each value's source; expired ones go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from prospectpro.config import Settings
from prospectpro.domain.business import Business
from prospectpro.domain.campaign import CampaignRequest
from prospectpro.pipeline.results import lead_row
from prospectpro.providers.protocols import Enrichment
from prospectpro.services.submissions import submit_campaign
from prospectpro.store.db import Database
from prospectpro.store.leads import clear_expired_google_fields, store_leads
from prospectpro.store.schema import LOCAL_USER_ID, leads

FETCHED = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
EXPIRES = FETCHED + timedelta(days=30)


def google(place_id: str, **fields: object) -> Business:
    return Business("google", place_id, f"G {place_id}", street="Esplanadi", housenumber="1", city="Helsinki",
                    country="FI", phone="+358 9 111111", website="https://g.example/", latitude=60.17,
                    longitude=24.94, rating=4.1, review_count=9, fetched_at=FETCHED.isoformat(),
                    expires_at=EXPIRES.isoformat(), **fields)  # type: ignore[arg-type]


def test_expired_google_values_are_cleared_and_the_rest_stays(any_db: Database) -> None:
    request = CampaignRequest(business_type="cafe", location="60.1674,24.9425,3000")
    job = submit_campaign(any_db, Settings(import_bundled_places=False), LOCAL_USER_ID, request).job
    osm = Business("osm", "node/7", "Kahvila", street="Esplanadi", housenumber="1", city="Helsinki", country="FI",
                   latitude=60.1701, longitude=24.9401)
    merged = osm.merged_with(google("ChIJm"))
    rows = [
        {"dedup_key": f"k{i}", **lead_row(b, Enrichment(), 60, {"name": 10})}
        for i, b in enumerate([merged, google("ChIJg"), osm])
    ]
    assert rows[0]["google_expires_at"] == EXPIRES and rows[2]["google_expires_at"] is None
    with any_db.write() as conn:
        store_leads(conn, LOCAL_USER_ID, str(job.campaign_id), rows, FETCHED)
        assert clear_expired_google_fields(conn, EXPIRES - timedelta(seconds=1)) == 0
        assert clear_expired_google_fields(conn, EXPIRES) == 2
    with any_db.read() as conn:
        got = {r.dedup_key: r for r in conn.execute(select(leads))}
    both, only, plain = got["k0"], got["k1"], got["k2"]
    assert both.business_name == "Kahvila" and both.address == "Esplanadi 1, Helsinki"  # OSM's address stays whole
    assert both.latitude == 60.1701 and both.phone is None and both.website is None and both.rating is None
    assert both.sources == ["osm:node/7", "google:ChIJm"] and both.google_expires_at is None
    assert set(both.field_sources) == {"business_name", "address", "latitude", "longitude"}
    assert only.business_name == "" and only.address is None and only.latitude is None
    assert only.sources == ["google:ChIJg"] and only.field_sources == {} and only.review_count is None
    assert plain.business_name == "Kahvila" and plain.field_sources["address"]["source"] == "osm:node/7"
