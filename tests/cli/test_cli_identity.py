"""The command line as an API key's user (one history with the API and the web), and `providers`."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from prospectpro.bootstrap import open_database
from prospectpro.cli import app
from prospectpro.config import Settings
from prospectpro.jobs import queue
from prospectpro.services.users import create_user
from prospectpro.store.schema import LOCAL_USER_ID


def test_the_cli_works_as_the_user_of_prospectpro_api_key(tmp_path: Path) -> None:
    env = {"PROSPECTPRO_DATA_DIR": str(tmp_path / "data"), "PROSPECTPRO_POLL_INTERVAL": "0.05"}
    db = open_database(Settings(data_dir=tmp_path / "data"))
    user, key = create_user(db, "maija")
    runner = CliRunner()
    done = runner.invoke(app, ["discover", "cafe", "Helsinki", "-n", "3", "--sources", "osm"],
                         env={**env, "PROSPECTPRO_API_KEY": key})
    assert done.exit_code == 0, done.output
    mine, total = queue.list_jobs(db, user.user_id)
    assert total == 1 and mine[0].status.value == "completed"
    assert queue.list_jobs(db, LOCAL_USER_ID)[1] == 0  # not the local user's
    listed = runner.invoke(app, ["jobs", "list"], env={**env, "PROSPECTPRO_API_KEY": key})
    assert mine[0].id[:8] in listed.output
    assert mine[0].id[:8] not in runner.invoke(app, ["jobs", "list"], env=env).output
    wrong = runner.invoke(app, ["jobs", "list"], env={**env, "PROSPECTPRO_API_KEY": "ppk_not-a-key"})
    assert wrong.exit_code == 2 and "not a valid API key" in wrong.output
    db.dispose()


def test_providers_lists_the_shared_source_names(tmp_path: Path) -> None:
    env = {"PROSPECTPRO_DATA_DIR": str(tmp_path / "data"), "PROSPECTPRO_GOOGLE_PLACES_API_KEY": "k"}
    result = CliRunner().invoke(app, ["providers"], env=env)
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    assert set(lines) == {"osm", "google", "overture", "website", "hunter", "neverbounce"}
    assert "configured" in lines["google"] and "paid" in lines["google"] and "base" not in lines["google"]
    assert "not configured" in lines["hunter"] and "free" in lines["osm"] and "base" in lines["osm"]
