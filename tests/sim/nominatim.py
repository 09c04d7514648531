"""Nominatim's /search, simulated: jsonv2 answers (lat, lon and boundingbox as strings) from a small gazetteer.

Every request is in ``sim.calls`` with its time and headers (the User-Agent);
``NominatimSim.searches`` lists the ``q`` values asked, in order.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any

from tests.sim.server import SimRequest, SimResponse, Simulator

LICENCE = "Data © OpenStreetMap contributors, ODbL 1.0. https://osm.org/copyright"


def _key(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return " ".join("".join(c if c.isalnum() else " " for c in plain).split())


def place(
    name: str,
    lat: float,
    lon: float,
    *,
    box: tuple[float, float, float, float],  # south, west, north, east
    country: str,
    country_code: str,
    state: str | None = None,
    importance: float = 0.6,
    osm_type: str = "relation",
    osm_id: int = 1,
    addresstype: str = "city",
    category: str = "boundary",
    kind: str = "administrative",
) -> dict[str, Any]:
    """One jsonv2 search result, as Nominatim serves it."""
    south, west, north, east = box
    address: dict[str, str] = {addresstype: name, "country": country, "country_code": country_code}
    if state:
        address["state"] = state
    display = ", ".join(p for p in (name, state, country) if p)
    return {
        "place_id": 100000 + osm_id,
        "licence": LICENCE,
        "osm_type": osm_type,
        "osm_id": osm_id,
        "lat": f"{lat:.7f}",
        "lon": f"{lon:.7f}",
        "category": category,
        "type": kind,
        "place_rank": 16,
        "importance": importance,
        "addresstype": addresstype,
        "name": name,
        "display_name": display,
        "address": address,
        "boundingbox": [f"{south:.7f}", f"{north:.7f}", f"{west:.7f}", f"{east:.7f}"],
    }


@dataclass
class NominatimSim:
    gazetteer: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    searches: list[str] = field(default_factory=list)

    def add(self, query: str, *results: dict[str, Any]) -> None:
        """What a search for ``query`` (matched blind to case, accents and punctuation) answers."""
        self.gazetteer[_key(query)] = list(results)


def install(sim: Simulator, gazetteer: dict[str, list[dict[str, Any]]] | None = None) -> NominatimSim:
    state = NominatimSim()
    for query, results in (gazetteer or {}).items():
        state.add(query, *results)

    def search(request: SimRequest) -> SimResponse:
        if request.arg("format") != "jsonv2":
            return SimResponse(400, "<html><body>format must be jsonv2 here</body></html>")
        query = request.arg("q") or ""
        state.searches.append(query)
        limit = int(request.arg("limit", "10") or 10)
        return SimResponse(200, state.gazetteer.get(_key(query), [])[:limit])

    sim.route("GET", "/search", search)
    return state
