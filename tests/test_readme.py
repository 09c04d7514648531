"""The README's first two commands are the ones CI and newcomers run."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parents[1]


def readme_commands() -> list[str]:
    lines = ROOT.joinpath("README.md").read_text().splitlines()
    start = lines.index("```sh") + 1
    return lines[start : start + 2]


def test_ci_runs_the_readme_test_command() -> None:
    install_and_run, test = readme_commands()
    assert install_and_run.endswith('prospectpro discover "cafe" "Helsinki" --max-results 20 --sources osm')
    assert test.endswith(".venv/bin/pytest")
    assert test in ROOT.joinpath(".ci", "run").read_text().splitlines()
