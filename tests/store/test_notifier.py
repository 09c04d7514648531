"""In-process wake-ups after a commit: one failing listener does not silence the others."""

from __future__ import annotations

from prospectpro.store.db import Database, mark_changed


def test_a_failing_listener_does_not_keep_the_others_from_hearing(db: Database) -> None:
    heard: list[str] = []

    def broken(job_id: str) -> None:
        raise RuntimeError("listener bug")

    db.notifier.subscribe(broken)
    db.notifier.subscribe(heard.append)
    with db.write() as conn:
        mark_changed(conn, "job-1")
    assert heard == ["job-1"]  # and the write itself did not raise
