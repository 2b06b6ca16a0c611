"""`lorafleet up` with no configuration: SQLite + kombu's SQLAlchemy broker, API and workers in one command."""
from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import ROOT, wait_for

pytestmark = pytest.mark.integration
DATA = Path(__file__).parent / "data" / "tiny_alpaca.jsonl"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_embedded_up_runs_a_preflight_job(tmp_path, models_cache):
    data_dir = tmp_path / "lf"
    (data_dir / "models").mkdir(parents=True)
    cached = models_cache / "smollm2-135m-instruct"
    if cached.exists():
        (data_dir / "models" / "smollm2-135m-instruct").symlink_to(cached)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "LORAFLEET_DATA_DIR")}
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115 - the child's log
    proc = subprocess.Popen([sys.executable, "-m", "lorafleet_cli.main", "up", "--data-dir", str(data_dir),
                             "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        def healthy():
            try:
                return httpx.get(f"{base}/health", timeout=2).json()
            except httpx.HTTPError:
                return None

        health = wait_for(healthy, 90, what="lorafleet up to answer /health")
        assert health["mode"] == "embedded"
        key_file = data_dir / "admin.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert (data_dir / "lorafleet.db").exists()
        admin = {"Authorization": f"Bearer {key_file.read_text().strip()}"}
        with httpx.Client(base_url=base, timeout=30) as c:
            user = c.post("/v1/users", headers=admin, json={"name": "embedded-user"}).json()
            h = {"Authorization": f"Bearer {user['api_key']}"}
            f = c.post("/v1/files", headers=h, files={"file": ("t.jsonl", DATA.read_bytes())},
                       data={"purpose": "fine-tune"}).json()
            job = c.post("/v1/preflight/jobs", headers=h, json={"model": "smollm2-135m-instruct",
                                                                "training_file": f["id"]}).json()
            final = wait_for(lambda: (j := c.get(f"/v1/jobs/{job['id']}", headers=h).json())["status"]
                             in ("succeeded", "failed") and j, 180, what="embedded job to finish")
            assert final["status"] == "succeeded", final
            assert final["result"]["n_examples"] == 6
            events = c.get(f"/v1/jobs/{job['id']}/events", headers=h, params={"order": "asc"}).json()["data"]
            assert events[-1]["message"] == "Job succeeded"
            assert (data_dir / "broker.db").exists()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    assert proc.returncode is not None, (tmp_path / "up.log").read_text()
