"""What the campaign and job pages draw, computed on the server: the leads as rows, the map, the funnel.

Pure functions of the stored data (no database here), so each is tested without a browser and the
page is right before, and without, JavaScript.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from prospectpro.domain.business_types import resolve_business_type
from prospectpro.domain.scoring import SCORE_COMPONENTS
from prospectpro.errors import UserError

# Sources whose positions may be drawn on a map of OpenStreetMap data. Google's terms forbid showing
# its Places content on a non-Google map, so a position only Google gave is listed, never mapped.
MAPPABLE_SOURCES = ("osm", "overture")
MAP_WIDTH = 800
MAP_HEIGHT = 450
MAP_MARGIN = 0.08  # of each side, so the outline does not touch the frame
TILE_SIZE = 256
MAX_ZOOM = 19
CIRCLE_POINTS = 72
EARTH_RADIUS_M = 6_371_008.8
MIN_SPAN_M = 400

# E-mail verification statuses as a user reads them: (badge text, badge class).
EMAIL_STATUS = {
    "valid": ("verified", "ok"),
    "accept_all": ("accepts all", "warn"),
    "catchall": ("accepts all", "warn"),
    "catch_all": ("accepts all", "warn"),
    "invalid": ("invalid", "bad"),
    "disposable": ("disposable", "bad"),
    "unknown": ("unverified", "muted"),
}


# -- leads ----------------------------------------------------------------------------


def category_label(category: str | None) -> str:
    """'amenity=cafe' → 'Cafe', Google's 'coffee_shop' → 'Coffee shop': the type's label where the type
    is known, else its words."""
    text = (category or "").strip()
    if not text:
        return ""
    try:
        return resolve_business_type(text.replace("_", " ") if "=" not in text else text).label
    except UserError:
        pass
    words = text.split("=", 1)[-1].replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def email_badge(status: str | None) -> tuple[str, str] | None:
    key = (status or "").strip().lower().replace("-", "_")
    if not key:
        return None
    return EMAIL_STATUS.get(key, (key.replace("_", " "), "muted"))


def _source_name(ref: object) -> str:
    return str(ref or "").split(":", 1)[0]


def position_source(lead: Mapping[str, Any]) -> str | None:
    """The source of the lead's position: what field_sources says for its latitude, else (older leads)
    its first discovery source. None without a position."""
    if lead.get("latitude") is None or lead.get("longitude") is None:
        return None
    field_sources = lead.get("field_sources") or {}
    named = (field_sources.get("latitude") or {}).get("source") if isinstance(field_sources, Mapping) else None
    if named:
        return _source_name(named)
    refs = [_source_name(r) for r in lead.get("sources") or []]
    for name in (*MAPPABLE_SOURCES, "google"):
        if name in refs:
            return name
    return refs[0] if refs else None


def mappable(lead: Mapping[str, Any]) -> bool:
    return position_source(lead) in MAPPABLE_SOURCES


def score_segments(breakdown: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The score bar: one segment per component, as wide as the points it got (of 100)."""
    got = breakdown or {}
    out = []
    for name, maximum in SCORE_COMPONENTS.items():
        try:
            points = max(0, min(int(got.get(name, 0) or 0), maximum))
        except (TypeError, ValueError):
            points = 0
        out.append({"name": name, "points": points, "max": maximum})
    return out


def _plain(value: object) -> str:
    return str(value or "").strip()


def lead_rows(leads: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each lead with what its row shows and filters on."""
    rows = []
    for index, lead in enumerate(leads):
        badge = email_badge(lead.get("email_status")) if lead.get("email") else None
        rows.append(
            {
                **lead,
                "index": index,
                "category_label": category_label(lead.get("category")),
                "segments": score_segments(lead.get("score_breakdown")),
                "badge": badge,
                "verified": bool(lead.get("email")) and (lead.get("email_status") or "").lower() == "valid",
                "mappable": mappable(lead),
                "phone_href": re.sub(r"[^0-9+]", "", _plain(lead.get("phone"))),
            }
        )
    return rows


# -- the map --------------------------------------------------------------------------


def _mercator(lat: float, lon: float, zoom: float) -> tuple[float, float]:
    """World pixel coordinates (Web Mercator, as tile servers cut them) at ``zoom``."""
    lat = max(min(lat, 85.05112878), -85.05112878)
    scale = TILE_SIZE * 2**zoom
    x = (lon + 180.0) / 360.0 * scale
    sin = math.sin(math.radians(lat))
    y = (0.5 - math.log((1 + sin) / (1 - sin)) / (4 * math.pi)) * scale
    return x, y


def circle_points(lat: float, lon: float, radius_m: float, n: int = CIRCLE_POINTS) -> list[tuple[float, float]]:
    """The (lat, lon) points of a circle of ``radius_m`` around a centre (great-circle destinations)."""
    d = radius_m / EARTH_RADIUS_M
    la, lo = math.radians(lat), math.radians(lon)
    points = []
    for i in range(n):
        bearing = 2 * math.pi * i / n
        lat2 = math.asin(math.sin(la) * math.cos(d) + math.cos(la) * math.sin(d) * math.cos(bearing))
        lon2 = lo + math.atan2(
            math.sin(bearing) * math.sin(d) * math.cos(la), math.cos(d) - math.sin(la) * math.sin(lat2)
        )
        points.append((math.degrees(lat2), math.degrees(lon2)))
    return points


def _with_min_span(points: list[tuple[float, float]], span_m: float = MIN_SPAN_M) -> list[tuple[float, float]]:
    """The points, and a box around their middle at least ``span_m`` across: one lead is not a zoom-19 map."""
    lats = [p[0] for p in points]
    lons = [p[1] for p in points]
    mid_lat, mid_lon = (min(lats) + max(lats)) / 2, (min(lons) + max(lons)) / 2
    dlat = span_m / 2 / 111_320
    dlon = dlat / max(math.cos(math.radians(mid_lat)), 0.01)
    return [*points, (mid_lat - dlat, mid_lon - dlon), (mid_lat + dlat, mid_lon + dlon)]


def tile_url_origin(url: str) -> str | None:
    """The origin the page's Content-Security-Policy must allow images from (None: no tiles)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def map_view(
    area: Mapping[str, Any] | None,
    leads: Iterable[Mapping[str, Any]],
    *,
    tiles_url: str = "",
    tiles_attribution: str = "",
) -> dict[str, Any] | None:
    """The map in SVG coordinates: the area's outline, a marker for each mappable lead, the tiles (if a
    tile server is configured) and how many leads are listed but not mapped, and why."""
    rows = list(leads)
    markers_at = [r for r in rows if r.get("mappable")]
    google_only = sum(1 for r in rows if position_source(r) == "google")
    no_position = sum(1 for r in rows if position_source(r) is None)
    outline_ll: list[tuple[float, float]] = []
    if area and area.get("latitude") is not None and area.get("radius_m"):
        outline_ll = circle_points(float(area["latitude"]), float(area["longitude"]), float(area["radius_m"]))
    at_leads = [(float(r["latitude"]), float(r["longitude"])) for r in markers_at]
    # The view fits the leads (a town's circle would shrink them to one blot), the outline showing where
    # it runs through the view; with no lead to show, it fits the area.
    points = _with_min_span(at_leads) if at_leads else outline_ll
    if not points:
        return None
    # The largest integer zoom at which everything fits: tiles are drawn at their own size, unscaled.
    usable_w, usable_h = MAP_WIDTH * (1 - 2 * MAP_MARGIN), MAP_HEIGHT * (1 - 2 * MAP_MARGIN)
    zoom = 0
    for z in range(MAX_ZOOM, -1, -1):
        xs, ys = zip(*(_mercator(la, lo, z) for la, lo in points), strict=True)
        if max(xs) - min(xs) <= usable_w and max(ys) - min(ys) <= usable_h:
            zoom = z
            break
    xs, ys = zip(*(_mercator(la, lo, zoom) for la, lo in points), strict=True)
    left = (min(xs) + max(xs)) / 2 - MAP_WIDTH / 2
    top = (min(ys) + max(ys)) / 2 - MAP_HEIGHT / 2

    def at(lat: float, lon: float) -> tuple[float, float]:
        x, y = _mercator(lat, lon, zoom)
        return round(x - left, 1), round(y - top, 1)

    markers = []
    for r in markers_at:
        x, y = at(float(r["latitude"]), float(r["longitude"]))
        markers.append({"x": x, "y": y, "lead": r})
    outline_xy = [at(la, lo) for la, lo in outline_ll]
    outline = " ".join(f"{x},{y}" for x, y in outline_xy)
    area_in_view = all(0 <= x <= MAP_WIDTH and 0 <= y <= MAP_HEIGHT for x, y in outline_xy)
    tiles = []
    if tiles_url and tile_url_origin(tiles_url):
        count = 2**zoom
        for tx in range(int(left // TILE_SIZE), int((left + MAP_WIDTH) // TILE_SIZE) + 1):
            for ty in range(max(0, int(top // TILE_SIZE)), min(count - 1, int((top + MAP_HEIGHT) // TILE_SIZE)) + 1):
                url = tiles_url.replace("{z}", str(zoom)).replace("{x}", str(tx % count)).replace("{y}", str(ty))
                tiles.append({"x": round(tx * TILE_SIZE - left, 1), "y": round(ty * TILE_SIZE - top, 1), "url": url})
    return {
        "width": MAP_WIDTH,
        "height": MAP_HEIGHT,
        "zoom": zoom,
        "outline": outline,
        "area_in_view": area_in_view,
        "markers": markers,
        "tiles": tiles,
        "attribution": tiles_attribution if tiles else "",
        "google_only": google_only,
        "no_position": no_position,
        "area_label": (area or {}).get("label") or "",
    }


# -- the funnel -----------------------------------------------------------------------


def _count(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def funnel(
    metrics: Mapping[str, Any], email_counts: tuple[int, int] | None, *, before_found: bool = False
) -> dict[str, Any] | None:
    """found → qualified → enriched → with e-mail → verified → delivered, from the job's metrics; the two
    e-mail steps count the stored leads (``email_counts``: with an e-mail, with a verified one) when the
    metrics do not say. A step not reached yet has no count (None)."""
    found = _count(metrics.get("businesses_found"))
    if found is None and not before_found:  # ``before_found``: the job page, whose script fills it in
        return None
    with_email, verified = email_counts if email_counts is not None else (None, None)
    steps = [
        ("found", "Found", found),
        ("qualified", "Qualified", _count(metrics.get("qualified_leads"))),
        ("enriched", "Enriched", _count(metrics.get("leads_enriched"))),
        ("with_email", "With e-mail", _count(metrics.get("leads_with_email", with_email))),
        ("verified", "Verified e-mail", _count(metrics.get("leads_verified", verified))),
        ("delivered", "Delivered", _count(metrics.get("leads"))),
    ]
    widest = max([0, *(c for _, _, c in steps if c is not None)]) or 1
    per_lead = metrics.get("cost_per_lead")
    return {
        "steps": [
            {"key": key, "label": label, "count": count, "pct": 0 if count is None else round(100 * count / widest, 1)}
            for key, label, count in steps
        ],
        "total_cost": exact_money(metrics.get("total_cost")),
        "cost_per_lead": exact_money(per_lead) if per_lead is not None else None,
    }


def exact_money(value: Any) -> str:
    """A decimal string as dollars, never rounded away ('0.00175' → '$0.00175', '2.5' → '$2.50')."""
    try:
        amount = Decimal(str(value if value is not None else "0"))
    except InvalidOperation:
        return "$0.00"
    text = f"{amount.normalize():f}"
    whole, _, cents = text.partition(".")
    return f"${int(whole or 0):,}.{cents.ljust(2, '0')}"
