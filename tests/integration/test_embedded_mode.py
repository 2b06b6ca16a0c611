"""`lorafleet up` with no configuration: SQLite + kombu's SQLAlchemy broker, API and workers in one command."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import ROOT, wait_for
from tests.support.private_servers import free_port

pytestmark = pytest.mark.integration
DATA = Path(__file__).parent / "data" / "tiny_alpaca.jsonl"


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def start_training(c: httpx.Client, h: dict) -> str:
    """A fine-tuning job long enough to be mid-training when the test stops the service."""
    rows = [{"instruction": f"Say {i}.", "input": "", "output": f"{i} is said."} for i in range(16)]
    f = c.post("/v1/files", headers=h, files={"file": ("ft.jsonl", "".join(json.dumps(r) + "\n" for r in rows))},
               data={"purpose": "fine-tune"}).json()
    job = c.post("/v1/fine_tuning/jobs", headers=h, json={
        "model": "smollm2-135m-instruct", "training_file": f["id"], "method": {"type": "supervised", "supervised": {
            "hyperparameters": {"batch_size": 4, "micro_batch_size": 4, "num_epochs": 50, "cutoff_len": 96,
                                "save_steps": 1, "logging_steps": 1}}}}).json()
    wait_for(lambda: any(e["type"] == "metrics" for e in c.get(f"/v1/jobs/{job['id']}/events", headers=h,
                                                                 params={"limit": 100}).json()["data"]),
             240, 0.5, "the fine-tuning job to train")
    return job["id"]


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
            training = start_training(c, h)
        # SIGTERM to `lorafleet up` while a job trains: everything stops within ~15 s and the job is back
        # in line (it resumes from its checkpoint on the next start), no attempt spent.
        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(30)
        assert time.monotonic() - t0 < 16, (tmp_path / "up.log").read_text()[-3000:]
        wait_for(lambda: not group_alive(proc.pid), 5, 0.2, "every child of lorafleet up to exit")
        with sqlite3.connect(data_dir / "lorafleet.db") as db:
            status, lease, attempt = db.execute("SELECT status, lease_owner, attempt FROM jobs WHERE id = ?",
                                                (training,)).fetchone()
        assert (status, lease, attempt) == ("queued", None, 0)
    finally:
        if group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    assert proc.returncode is not None, (tmp_path / "up.log").read_text()
