"""The key that makes a campaign hold each real business once.

OSM often maps one place twice (a node for the entrance, a way for the building), and
later sources report it again. The fingerprint is built from the strongest identity we
have, so reports of one place collide and different places (two branches of a chain)
do not. A name alone is never enough: chains share names.
"""

from __future__ import annotations

import hashlib

from prospectpro.domain.business import Business
from prospectpro.domain.normalize import (
    address_key,
    is_social_or_generic_host,
    phone_e164,
    text_key,
    website_domain,
)

# Stored in job_candidates.fingerprint and leads.dedup_key, both String(400).
MAX_FINGERPRINT_LENGTH = 400


def _bounded(kind: str, body: str) -> str:
    key = f"{kind}:{body}"
    if len(key) <= MAX_FINGERPRINT_LENGTH:
        return key
    # Over-long names stay distinct and deterministic instead of being cut into collisions.
    return f"{kind}#:{hashlib.sha256(body.encode()).hexdigest()}"


def fingerprint(b: Business) -> str:
    """Identity key, by priority: name+address, name+phone, own website, phone, source ref."""
    name = text_key(b.name or "")
    address = address_key(b.street, b.housenumber)
    phone = phone_e164(b.phone, b.country)
    if name and address:
        return _bounded("na", f"{name}|{address}")
    if name and phone:
        return _bounded("np", f"{name}|{phone}")
    domain = website_domain(b.website)
    if domain and not is_social_or_generic_host(domain):
        return _bounded("w", domain)
    if phone:
        return _bounded("p", phone)
    return _bounded("src", b.ref)
