"""Exporting a campaign's leads: CSV that Excel opens safely, or JSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from prospectpro.store.leads import LEAD_COLUMNS

# Every column of a lead but its cost, which the JSON export carries.
CSV_COLUMNS = tuple(column for column in LEAD_COLUMNS if column != "cost")

# A cell starting with one of these is run as a formula by spreadsheets.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralize(value: str) -> str:
    """Make a cell inert for spreadsheets (OWASP CSV injection advice: prefix a quote).

    A plain number such as a western longitude ("-74.006") is no formula and stays numeric.
    """
    if not value.startswith(_FORMULA_STARTS) or _is_number(value):
        return value
    return "'" + value


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return value.strip() == value and value.lower() not in ("-inf", "+inf", "-nan", "+nan", "-infinity", "+infinity")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        value = " ".join(str(v) for v in value)
    elif isinstance(value, dict):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return neutralize(str(value))


def leads_csv(leads: Sequence[dict[str, Any]]) -> str:
    """UTF-8 text starting with a BOM, so Excel reads the accents right."""
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for lead in leads:
        writer.writerow([_cell(lead.get(column)) for column in CSV_COLUMNS])
    return buffer.getvalue()


# The ODbL asks for attribution wherever OSM data is shown or passed on.
OSM_ATTRIBUTION = {
    "source": "OpenStreetMap",
    "notice": "Business data © OpenStreetMap contributors, available under the Open Database License (ODbL)",
    "url": "https://www.openstreetmap.org/copyright",
}


def leads_json(campaign: dict[str, Any], leads: Sequence[dict[str, Any]]) -> str:
    body = {"campaign": campaign, "leads": list(leads), "attribution": OSM_ATTRIBUTION}
    return json.dumps(body, ensure_ascii=False, indent=2)
