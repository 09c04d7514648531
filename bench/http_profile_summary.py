"""Summarize a py-spy `--format raw` profile (collapsed stacks) by where the time goes.

    py-spy record -p PID --gil -r 100 -d 14 --format raw -o prof.raw   # (bench/http_submit.py --profile does this)
    .venv/bin/python bench/http_profile_summary.py prof.raw

Each sample goes to the first category found walking from the innermost frame
outwards (anything the group-commit writer thread does counts as that thread);
then the prospectpro functions (inclusive).
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict

CATEGORIES = [
    ("group-commit writer thread (everything it calls)", ["Submitter._run"]),
    ("sqlite3 C calls (execute/commit)", ["do_execute", "do_commit", "do_rollback", "exec_driver_sql"]),
    ("SQLAlchemy result rows/type processing", ["process_result_value", "result_processor", "fetchone", "fetchall",
                                                "ScalarResult", "CursorResult", "from_row"]),
    ("SQLAlchemy compile/cache/bind", ["sqlalchemy/sql/", "cache_key", "process_bind_param"]),
    ("SQLAlchemy pool/connection/transaction", ["sqlalchemy/pool", "sqlalchemy/engine/base", "sqlalchemy/event",
                                                "sqlalchemy/engine/default"]),
    ("resolve_location", ["resolve_location"]),
    ("pydantic", ["pydantic"]),
    ("json", ["json/"]),
    ("anyio/threading hand-off", ["anyio", "threading.py", "queue.py"]),
    ("fastapi/starlette", ["fastapi/", "starlette/"]),
    ("uvicorn/httptools", ["uvicorn/", "httptools"]),
    ("prospectpro (own code)", ["prospectpro/"]),
    ("asyncio event loop", ["asyncio/", "uvloop", "Runner.run"]),
]


def main(path: str) -> None:
    total = 0
    cats: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    own: Counter[str] = Counter()
    examples: dict[str, Counter[str]] = defaultdict(Counter)
    for line in open(path):
        stack, _, n_ = line.rstrip().rpartition(" ")
        if not n_.isdigit():
            continue
        n = int(n_)
        total += n
        frames = stack.split(";")[1:]
        cat = "other"
        if any("Submitter._run" in f for f in frames):  # the writer thread, whatever it calls
            cat = CATEGORIES[0][0]
        for f in reversed(frames if cat == "other" else []):
            hit = next((name for name, pats in CATEGORIES if any(p in f for p in pats)), None)
            if hit:
                cat = hit
                break
        cats[cat] += n
        if frames:
            leaf[frames[-1]] += n
            examples[cat][frames[-1].split(" (")[0]] += n
        for f in {f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0] + ")" for f in frames
                  if "prospectpro/" in f and "cli.py" not in f}:
            own[f] += n
    print(f"{total} samples\n\n| share | where | e.g. |\n|---|---|---|")
    for k, n in cats.most_common():
        print(f"| {100 * n / total:.1f}% | {k} | {', '.join(e for e, _ in examples[k].most_common(3))} |")
    print("\nprospectpro functions, inclusive:")
    for f, n in own.most_common(12):
        print(f"  {100 * n / total:5.1f}%  {f}")


if __name__ == "__main__":
    main(sys.argv[1])
