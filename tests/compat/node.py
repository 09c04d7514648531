"""Running the Node scripts of tests/compat/js (the real @supabase/supabase-js from its lockfile)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

JS_DIR = Path(__file__).parent / "js"


def node_command(script: str) -> list[str]:
    """``node`` for a script of JS_DIR. supabase-js needs a global WebSocket: Node 22 has one,
    Node 20 behind --experimental-websocket. Without node or the installed packages the test
    skips, except in CI (CI=true), where .ci/run installs them (npm ci) and a skip would hide a gap."""
    node = shutil.which("node")
    missing = None
    if node is None:
        missing = "node is not installed"
    elif not (JS_DIR / "node_modules" / "@supabase" / "supabase-js").is_dir():
        missing = f"run `npm ci` in {JS_DIR}"
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the supabase-js compatibility test cannot run: {missing}")
        pytest.skip(missing)
    assert node is not None
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
    major = int(version.strip().lstrip("v").split(".")[0])
    flags = ["--experimental-websocket"] if major < 22 else []
    return [node, *flags, str(JS_DIR / script)]
