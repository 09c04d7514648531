"""The real @supabase/supabase-js (Node) against ProspectPro: the original React hook's reads and
its live subscription, through to completed; a second owner's client gets no row and no change."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from prospectpro.bootstrap import build_worker, open_database
from prospectpro.jobs import queue
from tests.api.conftest import start_server
from tests.api.helpers import new_api_key
from tests.compat import node
from tests.compat.node import JS_DIR, node_command


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_supabase_js_reads_and_follows_a_job_through_completed(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    overrides = {"database_url": request.getfixturevalue("pg_db").url} if store == "postgresql" else {}
    # No worker in the server: the job waits until both clients are subscribed.
    server = start_server(tmp_path, workers=0, **overrides)
    alice, bob = new_api_key(server.db, "alice"), new_api_key(server.db, "bob")
    env = {**os.environ, "BASE_URL": server.url, "KEY_A": alice, "KEY_B": bob, "TIMEOUT_MS": "20000"}
    process = subprocess.Popen(
        node_command("job_progress.mjs"), cwd=JS_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    worker = None
    # A worker with its own connection pool and notifier, as another process's would be: the
    # server sees its changes only through the event log (the hub's poll), not an in-process wake-up.
    other_db = open_database(server.settings, prepare=False)
    try:
        timer = threading.Timer(60, process.kill)  # a hung client must not hang the suite
        timer.start()
        assert process.stdout is not None
        lines: list[str] = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("READY "):
                worker = build_worker(other_db, server.settings, 1).start()
        process.wait()
        timer.cancel()
        stderr = process.stderr.read() if process.stderr else ""
        assert process.returncode == 0, "".join(lines) + stderr
        result: dict[str, Any] = json.loads(next(x for x in lines if x.startswith("RESULT "))[7:])
        log = queue.list_events(server.db, result["jobId"], after=1)  # after the "created" event it was read at
    finally:
        if process.poll() is None:
            process.kill()
        if worker is not None:
            worker.stop()
        other_db.dispose()
        server.stop()
    changes = result["changes"]
    # One change per event of the log, in its order, each once.
    seen = [(c["status"], c["progress"], c["current_stage"]) for c in changes]
    assert seen == [(e.data["status"], e.data["progress"], e.data["current_stage"]) for e in log]
    statuses = [c["status"] for c in changes]
    assert statuses[0] == "processing" and statuses[-1] == "completed"
    assert "enriching_contacts" in [c["current_stage"] for c in changes]
    assert all(isinstance(c["total_cost"], (int, float)) for c in changes)
    assert result["bobChanges"] == 0


def test_in_ci_a_missing_install_fails_instead_of_skipping(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(node, "JS_DIR", tmp_path)  # no node_modules here
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="cannot run"):
        node.node_command("job_progress.mjs")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        node.node_command("job_progress.mjs")
