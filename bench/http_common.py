"""Shared helpers for bench/http_*.py and bench/sse_*.py (servers, stats, RSS).

Every server is started in its own process group and stopped by that group's
id (SIGINT, then SIGKILL), so nothing outlives a run.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = sys.executable
PROSPECTPRO = str(Path(PY).parent / "prospectpro")
sys.path.insert(0, str(ROOT / "src"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_nofile(want: int = 8192) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(max(soft, want), hard) if hard != resource.RLIM_INFINITY else max(soft, want)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PROSPECTPRO_DATA_DIR=str(data_dir),
        # Limits a load test must lift (one owner sends everything):
        PROSPECTPRO_SUBMISSIONS_PER_MINUTE=str(10**9),
        PROSPECTPRO_SESSIONS_PER_MINUTE=str(10**9),
        PROSPECTPRO_STREAMS_PER_OWNER="100000",
    )
    env.update(extra)
    return env


def start(cmd: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
          ready_url: str, ready_method: str = "GET", timeout: float = 60) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(list(cmd), env=env, cwd=cwd, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"server exited with {proc.returncode}: {err[-2000:]}")
        try:
            httpx.request(ready_method, ready_url, timeout=2)
            return proc
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(f"server not ready after {timeout}s: {ready_url}")
        time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)
    if proc.stderr:
        proc.stderr.close()


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) in MiB."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0]) / 1024
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))
    return s[k]


def med(values: Iterable[float], nd: int = 1) -> str:
    v = sorted(values)
    if not v:
        return "-"
    f = (lambda x: f"{x:,.{nd}f}")
    return f"{f(statistics.median(v))} ({f(v[0])}–{f(v[-1])})"


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def versions() -> str:
    import sqlite3
    from importlib.metadata import version

    names = ["fastapi", "starlette", "uvicorn", "uvloop", "httptools", "pydantic", "SQLAlchemy", "anyio", "httpx",
             "httpx-sse"]
    parts = [f"Python {sys.version.split()[0]}", f"SQLite {sqlite3.sqlite_version}"]
    for n in names:
        try:
            parts.append(f"{n} {version(n)}")
        except Exception:
            pass
    return ", ".join(parts) + f"; {os.cpu_count()} CPUs"


# -- noise accounting ---------------------------------------------------------
# Other sessions share this 2-CPU machine. Each measurement records how much CPU
# went to processes that are not part of the measurement ("foreign"), so a run
# that was disturbed can be told apart from one that was not.

_TICK = os.sysconf("SC_CLK_TCK")


def _machine_busy() -> float:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]  # idle + iowait
    return (sum(v[:8]) - idle) / _TICK


def _pid_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rpartition(")")[2].split()
        return (int(parts[11]) + int(parts[12]) + int(parts[13]) + int(parts[14])) / _TICK  # incl. reaped children
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def _self_cpu() -> float:
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


class CpuMeter:
    """CPU seconds used, split into ours (this process, its reaped children, given pids) and foreign."""

    def __init__(self, *pids: int) -> None:
        self.pids = pids

    def __enter__(self) -> CpuMeter:
        self.t0 = time.monotonic()
        self.m0 = _machine_busy()
        self.s0 = _self_cpu()
        self.p0 = {p: _pid_cpu(p) for p in self.pids}
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.monotonic() - self.t0
        machine = _machine_busy() - self.m0
        server = sum(_pid_cpu(p) - self.p0[p] for p in self.pids)
        ours = server + _self_cpu() - self.s0
        self.wall = wall
        self.server_cores = server / wall
        self.ours_cores = ours / wall
        self.foreign_cores = max(0.0, machine - ours) / wall


def machine_busy_cores(seconds: float = 1.0) -> float:
    m0, t0 = _machine_busy(), time.monotonic()
    time.sleep(seconds)
    return (_machine_busy() - m0) / (time.monotonic() - t0)


def wait_for_quiet(limit_cores: float = 0.3, max_wait: float = 20.0) -> float:
    """Wait (bounded) until other processes use < limit_cores; return the last reading."""
    deadline = time.monotonic() + max_wait
    busy = machine_busy_cores()
    while busy > limit_cores and time.monotonic() < deadline:
        busy = machine_busy_cores(2.0)
    return busy
