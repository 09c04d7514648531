"""The WAL is copied back into the database file by a thread of its own, not by a commit."""

from __future__ import annotations

import time
from pathlib import Path

from prospectpro.bootstrap import open_database
from prospectpro.config import Settings
from prospectpro.domain.campaign import parse_campaign_request
from prospectpro.services.submissions import submit_campaign
from prospectpro.store.checkpoint import AUTOCHECKPOINT_PAGES
from prospectpro.store.schema import LOCAL_USER_ID

CAFES = parse_campaign_request({"business_type": "cafe", "location": "Helsinki", "max_results": 5})


def test_commits_leave_checkpoints_to_the_background_thread(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    db = open_database(settings)
    try:
        with db.read() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == AUTOCHECKPOINT_PAGES
        main_file = Path(db.engine.url.database or "")
        wal = main_file.with_name(main_file.name + "-wal")
        time.sleep(0.6)  # the start-up writes (migrations, places import) are checkpointed first
        size_before = main_file.stat().st_size
        for _ in range(40):
            submit_campaign(db, settings, LOCAL_USER_ID, CAFES)
        # Right after the commits the jobs are only in the WAL (no commit checkpointed)…
        assert wal.stat().st_size > 0
        # …and shortly after, the background thread has copied them into the database file.
        deadline = time.monotonic() + 5
        while main_file.stat().st_size <= size_before:
            assert time.monotonic() < deadline, "the WAL was not checkpointed in the background"
            time.sleep(0.05)
        with db.read() as conn:
            busy, log_frames, checkpointed = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        assert busy == 0 and log_frames == checkpointed
    finally:
        db.dispose()


def test_a_database_that_only_reads_starts_no_checkpoint_thread(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    open_database(settings).dispose()  # migrate and import once
    db = open_database(settings, prepare=False)
    try:
        with db.read() as conn:
            conn.exec_driver_sql("SELECT 1").scalar()
        assert db._checkpointer is not None and db._checkpointer._thread is None
    finally:
        db.dispose()
