"""Overpass's /api/interpreter and /api/status, simulated.

It reads the query the way the product writes it (``nwr["k"="v"](south,west,north,east);``
or ``area(id:N)->.a; nwr["k"="v"](area.a);``), answers with the matching
elements of its dataset (nodes with lat/lon, ways and relations with a
``center``), and records each query (``OverpassSim.queries``). Areas are
registered by id with their box (``add_area``). Faults come from the
simulator's ``fail`` (429, 504, a ``remark``: see ``remark_answer``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from tests.sim.server import SimRequest, SimResponse, Simulator

GENERATOR = "Overpass API 0.7.62.1 (simulated)"
OSM3S = {
    "timestamp_osm_base": "2026-12-01T00:00:00Z",
    "copyright": "The data included in this document is from www.openstreetmap.org. "
    "The data is made available under ODbL.",
}

_FILTER = re.compile(r'nwr\["([^"]+)"="([^"]+)"\]\(([^)]*)\);')
_AREA = re.compile(r"area\(id:(\d+)\)->\.a;")
_HEAD = re.compile(r"^\[out:json\]\[timeout:(\d+)\]\[maxsize:(\d+)\];")


def node(osm_id: int, lat: float, lon: float, **tags: str) -> dict[str, Any]:
    return {"type": "node", "id": osm_id, "lat": lat, "lon": lon, "tags": _tags(tags)}


def way(osm_id: int, lat: float, lon: float, **tags: str) -> dict[str, Any]:
    return {"type": "way", "id": osm_id, "center": {"lat": lat, "lon": lon}, "tags": _tags(tags)}


def _tags(tags: dict[str, str]) -> dict[str, str]:
    # Python names cannot hold ":": addr_street → addr:street, contact_phone → contact:phone.
    return {k.replace("__", ":").replace("addr_", "addr:").replace("contact_", "contact:"): v for k, v in tags.items()}


def remark_answer(remark: str = 'runtime error: Query timed out in "query" at line 1 after 91 seconds.') -> SimResponse:
    return SimResponse(200, {"version": 0.6, "generator": GENERATOR, "osm3s": OSM3S, "elements": [], "remark": remark})


def answer(elements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"version": 0.6, "generator": GENERATOR, "osm3s": OSM3S, "elements": elements}


@dataclass
class OverpassSim:
    elements: list[dict[str, Any]] = field(default_factory=list)
    areas: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)
    queries: list[str] = field(default_factory=list)
    status_text: str = (
        "Connected as: 2130706433\nCurrent time: 2026-12-02T00:00:00Z\nRate limit: 2\n2 slots available now.\n"
    )

    def add_area(self, area_id: int, box: tuple[float, float, float, float]) -> None:
        self.areas[area_id] = box

    def matching(self, query: str) -> list[dict[str, Any]]:
        area = _AREA.search(query)
        found: dict[tuple[str, int], dict[str, Any]] = {}
        for key, value, spatial in _FILTER.findall(query):
            if spatial == "area.a":
                box = self.areas.get(int(area.group(1))) if area else None
                if box is None:
                    continue
            else:
                box = tuple(float(v) for v in spatial.split(","))  # type: ignore[assignment]
            south, west, north, east = box
            for element in self.elements:
                where = element if element["type"] == "node" else element["center"]
                if (
                    element["tags"].get(key) == value
                    and south <= where["lat"] <= north
                    and west <= where["lon"] <= east
                ):
                    found[(element["type"], element["id"])] = element
        return list(found.values())


def _query_of(request: SimRequest) -> str:
    if request.method == "POST":
        return parse_qs(request.body.decode()).get("data", [""])[0]
    return request.arg("data") or ""


def install(
    sim: Simulator,
    elements: list[dict[str, Any]] | None = None,
    areas: dict[int, tuple[float, float, float, float]] | None = None,
) -> OverpassSim:
    state = OverpassSim(elements=list(elements or []), areas=dict(areas or {}))

    def interpreter(request: SimRequest) -> SimResponse:
        query = _query_of(request)
        state.queries.append(query)
        if not _HEAD.match(query) or "out center tags;" not in query:
            return SimResponse(
                400,
                '<html><body><p><strong style="color:#FF0000">Error</strong>: line 1: '
                "parse error: not the query this simulator reads</p></body></html>",
            )
        return SimResponse(200, answer(state.matching(query)))

    def status(request: SimRequest) -> SimResponse:
        return SimResponse(200, state.status_text, headers={"Content-Type": "text/plain"})

    sim.route("GET", "/api/interpreter", interpreter)
    sim.route("POST", "/api/interpreter", interpreter)
    sim.route("GET", "/api/status", status)
    return state
