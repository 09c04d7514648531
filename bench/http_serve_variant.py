"""`prospectpro serve` with the per-owner submission rate check replaced — a what-if, bench only.

    .venv/bin/python bench/http_serve_variant.py {none|probe} serve --host ... --port ... --workers 0

none:  _check_rate does nothing (the cost of everything else on the submit path).
probe: the same limit decided by one indexed probe instead of fetching every
       row of the owner's last minute: is there a row at OFFSET per_minute-1?
The product code is untouched on disk; this process patches it in memory.
"""

from __future__ import annotations

import math
import sys
from datetime import timedelta

from sqlalchemy import select

import prospectpro.services.campaigns as campaigns
from prospectpro.errors import RateLimited
from prospectpro.store.schema import discovery_jobs


def _probe(conn, owner_id, per_minute, now):  # type: ignore[no-untyped-def]
    since = now - timedelta(minutes=1)
    oldest_counted = conn.execute(
        select(discovery_jobs.c.created_at)
        .where(discovery_jobs.c.owner_id == owner_id, discovery_jobs.c.created_at > since)
        .order_by(discovery_jobs.c.created_at.desc())
        .limit(1)
        .offset(per_minute - 1)
    ).scalar()
    if oldest_counted is not None:
        retry_after = max(1, math.ceil((oldest_counted + timedelta(minutes=1) - now).total_seconds()))
        raise RateLimited(f"at most {per_minute} campaigns per minute; try again later", retry_after=retry_after)


VARIANTS = {"none": lambda *a, **k: None, "probe": _probe}

if __name__ == "__main__":
    campaigns._check_rate = VARIANTS[sys.argv[1]]  # type: ignore[assignment]
    from prospectpro.cli import main

    sys.argv = ["prospectpro", *sys.argv[2:]]
    sys.exit(main())
