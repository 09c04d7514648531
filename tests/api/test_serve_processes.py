"""`prospectpro serve --api-processes 2` as an operator runs it: several processes, one port, one store."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from prospectpro.bootstrap import open_database
from prospectpro.config import Settings
from prospectpro.store.schema import discovery_jobs, workers
from tests.api.conftest import free_port
from tests.api.helpers import wait_until

ROOT = Path(__file__).parents[2]
BODY = {"business_type": "cafe", "location": "Helsinki", "max_results": 3}


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    url: str
    data_dir: Path
    stderr_path: Path
    env: dict[str, str]

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prospectpro", *args], env=env, capture_output=True, text=True, timeout=120
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    data_dir = tmp_path / "data"
    env = {
        **os.environ,
        "PROSPECTPRO_DATA_DIR": str(data_dir),
        "PROSPECTPRO_POLL_INTERVAL": "0.05",
        "PROSPECTPRO_SSE_POLL_INTERVAL": "0.05",
        # Per process: each server process admits one new anonymous session a minute.
        "PROSPECTPRO_SESSIONS_PER_MINUTE": "1",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("PROSPECTPRO_DATABASE_URL", None)
    port = free_port()
    stderr_path = tmp_path / "serve.stderr"
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "prospectpro", "serve",
                "--api-processes", "2", "--workers", "1",
                "--port", str(port), "--log-level", "warning",
            ],  # fmt: skip
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,  # its own process group: cleaned up below by that id
        )
    server = Served(proc=proc, url=f"http://127.0.0.1:{port}", data_dir=data_dir, stderr_path=stderr_path, env=env)
    try:
        yield server
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def healthz(url: str) -> dict[str, Any] | None:
    try:
        response = httpx.get(f"{url}/healthz", timeout=5)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def post(url: str, token: str | None, body: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:  # a connection of its own
        return client.post("/api/v1/campaigns", json=body)


@pytest.mark.slow
def test_two_server_processes_share_the_port_and_the_store(served: Served) -> None:
    health = wait_until(
        lambda: served.proc.poll() is None and healthz(served.url), timeout=60, interval=0.1, what="/healthz"
    )
    assert served.proc.poll() is None, served.stderr()
    assert health["database"] == "ok" and health["schema_current"] is True

    # Each process runs its own in-process worker: two live workers, in two processes.
    health = wait_until(lambda: (h := healthz(served.url)) and h["workers_alive"] >= 2 and h, timeout=30)
    assert health["workers_alive"] == 2
    db = open_database(Settings(data_dir=served.data_dir), prepare=False)
    try:
        with db.read() as conn:
            pids = set(conn.execute(select(workers.c.pid)).scalars())
        assert len(pids) == 2 and served.proc.pid not in pids, pids
        assert all(alive(pid) for pid in pids)

        created = cli(served.env, "users", "create", "alice")
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip().splitlines()[-1].strip()
        assert key.startswith("ppk_"), created.stdout

        with ThreadPoolExecutor(max_workers=20) as pool:
            responses = list(pool.map(lambda _: post(served.url, key, BODY), range(20)))
        assert [r.status_code for r in responses] == [202] * 20, [r.text for r in responses if r.status_code != 202]
        job_ids = [r.json()["job_id"] for r in responses]
        assert len(set(job_ids)) == 20
        assert all(r.json()["created"] is True for r in responses)
        with db.read() as conn:
            assert conn.execute(select(func.count()).select_from(discovery_jobs)).scalar_one() == 20

        # Both processes answer HTTP: /metrics says which process did (fresh connection each time).
        answered: set[str] = set()
        for _ in range(200):
            with httpx.Client(base_url=served.url, timeout=30) as client:
                text = client.get("/metrics").text
            answered |= set(re.findall(r'prospectpro_server_info\{pid="(\d+)"', text))
            if len(answered) == 2:
                break
        assert answered == {str(pid) for pid in pids}, answered

        # The anonymous-session limit (1 a minute here) is counted in the store, so it holds across
        # both processes: of many anonymous submissions from this address exactly one opens a session.
        statuses: list[int] = []
        for _ in range(5):
            with ThreadPoolExecutor(max_workers=8) as pool:
                statuses += [r.status_code for r in pool.map(lambda _: post(served.url, None, BODY), range(8))]
        assert sorted(set(statuses)) == [202, 429], statuses
        assert statuses.count(202) == 1, statuses

        # One job followed to the end over HTTP.
        with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
            def finished() -> dict[str, Any] | None:
                response = client.get(f"/api/v1/jobs/{job_ids[0]}")
                assert response.status_code == 200, response.text
                job = response.json()
                assert job["status"] not in {"failed", "cancelled"}, job
                return job if job["status"] == "completed" else None

            job = wait_until(finished, timeout=60, interval=0.1, what="the first job to complete")
        assert job["progress"] == 100 and job["id"] == job_ids[0]

        served.proc.send_signal(signal.SIGINT)
        try:
            served.proc.wait(15)
        except subprocess.TimeoutExpired:
            pytest.fail(f"serve did not exit within 15 s of SIGINT; stderr:\n{served.stderr()}")
        wait_until(lambda: not any(alive(pid) for pid in pids), timeout=5, what="the server processes to end")
        stderr = served.stderr()
        assert "Traceback" not in stderr, stderr
        assert served.proc.returncode in (0, -signal.SIGINT, 130), (served.proc.returncode, stderr)
        with db.read() as conn:  # each process stopped its worker cleanly (it unregisters on the way out)
            assert conn.execute(select(func.count()).select_from(workers)).scalar_one() == 0
    finally:
        db.dispose()
