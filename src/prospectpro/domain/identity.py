"""Whether two candidates are one business, across sources (OSM, Overture, Google).

Two reports are the same business when they share a source id, share today's
exact fingerprint (domain/dedup.py), or — always within a short distance,
and only between reports of different sources (a source's own two records
are two places by its own account: two Starbucks of one map stay two) — have
the same normalised phone, the same registrable website domain (not a shared
platform, nor a domain several far-apart candidates share: a chain's head
office), or close names after normalising case, accents and legal suffixes.

Every threshold is here, in ``THRESHOLDS``.
"""

from __future__ import annotations

import functools
import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz

from prospectpro.domain.business import Business
from prospectpro.domain.emails import registrable_domain
from prospectpro.domain.normalize import is_social_or_generic_host, phone_e164, text_key, website_domain


@dataclass(frozen=True)
class Thresholds:
    contact_m: float = 150.0  # a shared phone or domain counts within this distance
    name_m: float = 80.0  # close names count within this (chains' branches are further apart)
    name_score: float = 88.0  # rapidfuzz score (0–100) of the normalised names
    shared_far_m: float = 1000.0  # a phone/domain on candidates this far apart identifies no single place


THRESHOLDS = Thresholds()

# Legal forms and filler words that say nothing about which business it is.
_LEGAL = frozenset(
    [
        "oy",
        "oyj",
        "ab",
        "ky",
        "tmi",
        "ay",
        "gmbh",
        "ag",
        "kg",
        "ug",
        "mbh",
        "ev",
        "llc",
        "inc",
        "incorporated",
        "ltd",
        "limited",
        "plc",
        "corp",
        "corporation",
        "co",
        "company",
        "sa",
        "sas",
        "sarl",
        "srl",
        "spa",
        "bv",
        "nv",
        "pty",
        "pllc",
        "pc",
        "lp",
        "llp",
        "the",
    ]
)
_SHORT = {"ave": "avenue", "st": "street", "rd": "road", "blvd": "boulevard", "dr": "drive", "ctr": "center",
          "centre": "center", "and": "", "dds": "", "dmd": "", "md": ""}  # fmt: skip
_M_PER_DEG = math.pi * 6_371_008.8 / 180


def name_key(name: str | None) -> str:
    """Case, accents, punctuation and legal suffixes gone: "Café Engel Oy" → "cafe engel"."""
    words = text_key((name or "").replace("&", " and ")).split()
    kept = [_SHORT.get(w, w) for w in words if w not in _LEGAL]
    return " ".join(w for w in kept if w)


def names_close(a: str | None, b: str | None, threshold: float = THRESHOLDS.name_score) -> bool:
    ka, kb = name_key(a), name_key(b)
    if not ka or not kb:
        return False
    return ka == kb or max(fuzz.ratio(ka, kb), fuzz.token_sort_ratio(ka, kb)) >= threshold


def distance_m(a: Business, b: Business) -> float | None:
    if None in (a.latitude, a.longitude, b.latitude, b.longitude):
        return None
    assert a.latitude is not None and a.longitude is not None and b.latitude is not None and b.longitude is not None
    dlat = (a.latitude - b.latitude) * _M_PER_DEG
    dlon = (a.longitude - b.longitude) * _M_PER_DEG * math.cos(math.radians((a.latitude + b.latitude) / 2))
    return math.hypot(dlat, dlon)


@dataclass(frozen=True, slots=True)
class _Keys:
    refs: frozenset[str]
    phone: str | None
    domain: str | None
    name: str


_PLAIN_INTERNATIONAL = re.compile(r"^\+[\d\s().-]{6,24}$")
_NOT_DIGIT = re.compile(r"\D")


@functools.lru_cache(maxsize=65536)
def phone_key(raw: str | None, country: str | None) -> str | None:
    """The number in E.164 for comparison. Written internationally ("+1 512-555-0101") it is its digits —
    phonenumbers' full parse is the slow part of grouping and changes nothing for such a number."""
    if not raw:
        return None
    if _PLAIN_INTERNATIONAL.match(raw.strip()):
        digits = _NOT_DIGIT.sub("", raw)
        return f"+{digits}" if 7 <= len(digits) <= 15 else None
    return phone_e164(raw, country)


@functools.lru_cache(maxsize=65536)
def domain_key(website: str | None) -> str | None:
    """The registrable domain ("shop.example.co.uk" → "example.co.uk"); a shared platform identifies no one."""
    host = website_domain(website)
    return None if not host or is_social_or_generic_host(host) else (registrable_domain(host) or host)


def _keys(b: Business) -> _Keys:
    return _Keys(frozenset(b.sources), phone_key(b.phone, b.country), domain_key(b.website), name_key(b.name))


def _shared_far(values: dict[str, list[int]], items: Sequence[Business], limit: float) -> set[str]:
    """Values several candidates hold that are far apart: a chain's domain, a central booking number."""
    far: set[str] = set()
    for value, holders in values.items():
        if len(holders) < 2:
            continue
        points = [items[i] for i in holders]
        first = points[0]
        if any((d := distance_m(first, p)) is not None and d > limit for p in points[1:]):
            far.add(value)
    return far


def same_business(a: Business, b: Business, *, ignore: frozenset[str] = frozenset()) -> bool:
    """The pair rule (``ignore``: phones/domains known to be shared by far-apart places)."""
    ka, kb = _keys(a), _keys(b)
    return _same(a, b, ka, kb, ignore)


def _same(a: Business, b: Business, ka: _Keys, kb: _Keys, ignore: frozenset[str]) -> bool:
    if ka.refs & kb.refs:
        return True
    if a.source == b.source:
        return False
    dist = distance_m(a, b)
    if dist is None:
        return False
    t = THRESHOLDS
    if dist <= t.contact_m:
        if ka.phone and ka.phone == kb.phone and ka.phone not in ignore:
            return True
        if ka.domain and ka.domain == kb.domain and ka.domain not in ignore:
            return True
    return dist <= t.name_m and names_close(a.name, b.name)


def group(items: Sequence[Business], fingerprints: Sequence[str] | None = None) -> list[list[int]]:
    """Indexes of ``items`` grouped into businesses (each group in input order, groups by first member).

    Pairs are compared only within neighbouring grid cells of ``contact_m``, so
    the work grows with the candidates, not their square.
    """
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)

    keys = [_keys(b) for b in items]
    by_value: dict[str, int] = {}
    for i, k in enumerate(keys):  # a shared source id or the exact fingerprint: no distance needed
        for value in (*(f"r:{r}" for r in k.refs), *((f"f:{fingerprints[i]}",) if fingerprints else ())):
            if value in by_value:
                union(by_value[value], i)
            else:
                by_value[value] = i
    phones: dict[str, list[int]] = defaultdict(list)
    domains: dict[str, list[int]] = defaultdict(list)
    for i, k in enumerate(keys):
        if k.phone:
            phones[k.phone].append(i)
        if k.domain:
            domains[k.domain].append(i)
    ignore = frozenset(_shared_far(phones, items, THRESHOLDS.shared_far_m)
                       | _shared_far(domains, items, THRESHOLDS.shared_far_m))  # fmt: skip
    cell = THRESHOLDS.contact_m / _M_PER_DEG
    grid: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, b in enumerate(items):
        if b.latitude is not None and b.longitude is not None:
            # Longitude cells widen towards the poles; a cell of `cell` degrees of longitude is never wider.
            grid[(math.floor(b.latitude / cell), math.floor(b.longitude / cell))].append(i)
    lon_span = {}
    for (cy, cx), members in grid.items():
        if cy not in lon_span:
            lat = abs(cy * cell)
            lon_span[cy] = max(1, math.ceil(1 / max(math.cos(math.radians(min(lat + cell, 89.9))), 1e-6)))
        span = lon_span[cy]
        for dy in (-1, 0, 1):
            for dx in range(-span, span + 1):
                others = grid.get((cy + dy, cx + dx))
                if not others:
                    continue
                for i in members:
                    for j in others:
                        if j <= i or find(i) == find(j):
                            continue
                        if _same(items[i], items[j], keys[i], keys[j], ignore):
                            union(i, j)
    groups: dict[int, list[int]] = {}
    for i in range(len(items)):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])
