"""Summarize a py-spy ``--threads --idle --format raw`` profile of one queue worker by where a job's time goes.

    .venv/bin/python bench/queue_profile.py PROFILE.txt

The slot thread's samples (wall clock: ``--idle`` keeps the samples where it waits) are put in the
first bucket whose marker appears in the stack, outermost frame first; the other threads are
counted by name, busy (not waiting on an Event/Condition/select) against idle.
"""

from __future__ import annotations

import sys
from collections import Counter

# (bucket, markers): the first bucket with a marker in the stack wins, checked in this order.
SLOT_BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    # before issue 14 (per-job claim read, per-job heartbeat thread, lock + update + insert per change)
    ("claim: the cheap has_claimable read", ("has_claimable (",)),
    ("claim txn: status hook", ("claim", "status_hook")),
    ("claim txn: commit", ("claim", "commit")),
    ("claim txn: event insert", ("claim", "_leased (", "execute")),
    ("claim txn: connection checkout + ping", ("claim", "Pool.connect")),
    ("claim txn: claim statement(s)", ("claim", "execute")),
    ("claim txn: Python around it", ("claim",)),
    ("heartbeat thread start", ("Thread.start",)),
    ("heartbeat thread stop/join", ("Thread.join",)),
    ("change: status hook", ("JobRun.change", "status_hook")),
    ("change: connection checkout + ping", ("JobRun.change", "Pool.connect")),
    ("change: lock_job (SELECT … FOR UPDATE)", ("JobRun.change", "lock_job (")),
    ("change: commit", ("JobRun.change", "commit")),
    ("change: the statement(s) (update + event)", ("JobRun.change", "execute")),
    ("change: Python around it", ("JobRun.change",)),
    ("JobRun setup", ("JobRun.__init__",)),
    ("waiting for work (poll / wake-up)", ("Event.wait",)),
    ("slot hand-off (Condition)", ("Condition.wait",)),
]
IDLE_MARKERS = ("Event.wait", "Condition.wait", "select (", "poll (", "_wait_conn", "sleep", "recv")


def bucket(stack: list[str]) -> str:
    for name, markers in SLOT_BUCKETS:
        if all(any(m in frame for frame in stack) for m in markers):
            return name
    return "other (slot loop, logging, …)"


def main(path: str) -> None:
    slot: Counter[str] = Counter()
    threads: Counter[tuple[str, str]] = Counter()
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            stack_text, _, count_text = line.rpartition(" ")
            count = int(count_text)
            frames = stack_text.split(";")
            thread = frames[0].split(": ", 1)[-1] if frames[0].startswith("thread") else "?"
            stack = frames[1:]
            if thread.startswith("worker-slot"):
                slot[bucket(stack)] += count
            else:
                name = "lease-heartbeat (per job)" if thread.startswith("lease-heartbeat") else thread
                state = "idle" if stack and any(m in stack[-1] for m in IDLE_MARKERS) else "busy"
                threads[(name, state)] += count
    total = sum(slot.values())
    print(f"\nslot thread, {total} samples (wall clock):")
    print("| where | share |\n|---|---|")
    for name, n in slot.most_common():
        print(f"| {name} | {100 * n / total:.1f} % |")
    print("\nother threads (samples, busy / idle):")
    names = sorted({n for n, _ in threads})
    for name in names:
        print(f"- {name}: busy {threads[(name, 'busy')]}, idle {threads[(name, 'idle')]}")


if __name__ == "__main__":
    main(sys.argv[1])
