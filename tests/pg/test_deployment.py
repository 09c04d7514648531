"""The deployment files (deploy/, docs/deployment.md) run only real `prospectpro` command lines and set only
real settings, with values the settings accept."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from prospectpro.cli import app
from prospectpro.config import Settings

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
PREFIX = "PROSPECTPRO_"


def check_command_line(args: list[str]) -> None:
    """Parse ``args`` (after ``prospectpro``) as the CLI would, without running it; raises on an invalid line.

    Typer brings its own copy of click (``typer._click``): commands and errors are told apart by what they do.
    """
    command: Any = typer.main.get_command(app)
    ctx = command.make_context("prospectpro", list(args), resilient_parsing=False)
    while hasattr(command, "resolve_command"):  # a group: on to the subcommand
        rest = [*ctx._protected_args, *ctx.args]
        assert rest, f"{args}: a group without a command"
        _, sub, sub_args = command.resolve_command(ctx, rest)
        assert sub is not None, rest
        ctx = sub.make_context(sub.name or "", sub_args, parent=ctx, resilient_parsing=False)
        command = sub
    assert not ctx.args, f"{args}: unexpected arguments {ctx.args}"


def check_settings(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    names = {name.upper() for name in Settings.model_fields}
    for variable in env:
        assert variable.startswith(PREFIX) and variable[len(PREFIX) :] in names, f"{variable} is not a setting"
    with monkeypatch.context() as patched:
        for variable, value in env.items():
            patched.setenv(variable, value)
        Settings()  # the values parse (JSON lists, numbers, booleans)


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return loaded


def test_compose_runs_real_commands_with_real_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose()["services"]
    ran = set()
    for name, service in services.items():
        command = service.get("command")
        if name in {"db", "proxy"}:
            continue
        assert command and command[0] == "prospectpro", name
        check_command_line(command[1:])
        ran.add(command[1])
        check_settings({k: str(v) for k, v in service["environment"].items()}, monkeypatch)
    assert ran == {"migrate", "serve", "worker"}
    assert services["worker"]["deploy"]["replicas"] == 3 and {"api1", "api2"} <= set(services)


def test_systemd_units_run_real_commands_with_real_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    assert len(units) == 3
    for unit in units:
        [exec_start] = [line for line in unit.read_text().splitlines() if line.startswith("ExecStart=")]
        args = shlex.split(exec_start.removeprefix("ExecStart=").replace("%i", "8001"))
        assert Path(args[0]).name == "prospectpro", unit
        check_command_line(args[1:])
    env = dict(
        line.split("=", 1)
        for line in (DEPLOY / "systemd" / "prospectpro.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    check_settings(env, monkeypatch)


def test_the_guide_names_only_real_settings_and_commands() -> None:
    text = (ROOT / "docs" / "deployment.md").read_text()
    names = {name.upper() for name in Settings.model_fields}
    for variable in set(re.findall(r"PROSPECTPRO_[A-Z0-9_]+", text)):
        assert variable[len(PREFIX) :] in names, variable
    for line in re.findall(r"`prospectpro ([^`]+)`", text):
        check_command_line(shlex.split(line.replace("ID", "abc").replace("…", "https://x.example")))


def test_an_invalid_command_line_is_caught() -> None:
    for line in (["worker", "--concurrency", "0"], ["serve", "--no-such-option"], ["no-such-command"], ["jobs"]):
        with pytest.raises(typer.TyperException):  # the usage errors of typer's click
            check_command_line(line)
