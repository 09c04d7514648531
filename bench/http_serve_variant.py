"""`prospectpro serve` with the per-owner submission rate check replaced — a what-if, bench only.

    .venv/bin/python bench/http_serve_variant.py none serve --host ... --port ... --workers 0

none:  _check_rate does nothing (the cost of everything else on the submit path).
(The former "probe" variant, one indexed OFFSET probe, is now the product's own check.)
The product code is untouched on disk; this process patches it in memory.
"""

from __future__ import annotations

import sys

import prospectpro.services.campaigns as campaigns


VARIANTS = {"none": lambda *a, **k: None}

if __name__ == "__main__":
    campaigns._check_rate = VARIANTS[sys.argv[1]]  # type: ignore[assignment]
    from prospectpro.cli import main

    sys.argv = ["prospectpro", *sys.argv[2:]]
    sys.exit(main())
