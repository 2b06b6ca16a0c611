"""A live ``lorafleet up`` (API + inference server + real Celery workers + dispatcher, on Postgres and Redis,
with the real base model) for the dashboard's browser tests, and Playwright driving Debian's Chromium.

One stack for the whole module keeps the run short. Chromium missing is a failure, never a skip."""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import REDIS
from tests.integration.conftest import ROOT, wait_for
from tests.support.private_servers import free_port

CHROMIUM = Path("/usr/bin/chromium")
BASE = "smollm2-135m-instruct"
SCREENSHOTS = ROOT / "test-artifacts" / "browser"


@dataclass
class UpStack:
    url: str
    admin_key: str
    log: Path

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)

    def new_user(self, name: str, **fields) -> str:
        """A new user's API key (made by the admin through the public API, with ``fields`` such as caps)."""
        r = self.api().post("/v1/users", json={"name": f"{name}-{secrets.token_hex(2)}", **fields},
                            headers={"Authorization": f"Bearer {self.admin_key}"})
        assert r.status_code == 201, r.text
        return r.json()["api_key"]


@pytest.fixture(scope="module")
def up_stack(pg_database, base_model_dir, tmp_path_factory):
    """``lorafleet up`` on its own database, Redis namespace and data dir (the base model linked in)."""
    data_dir = tmp_path_factory.mktemp("lf-up")
    (data_dir / "models").mkdir()
    (data_dir / "models" / BASE).symlink_to(base_model_dir)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": pg_database, "REDIS_URL": REDIS, "LORAFLEET_NAMESPACE": f"b{secrets.token_hex(3)}-",
           "LORAFLEET_DISPATCH_INTERVAL": "0.5", "LORAFLEET_ESTIMATE_INTERVAL": "1", "LORAFLEET_LEASE_SECONDS": "6"}
    log = data_dir / "up.log"
    out = open(log, "wb")  # noqa: SIM115 - the child's log
    proc = subprocess.Popen([sys.executable, "-m", "lorafleet_cli.main", "up", "--data-dir", str(data_dir),
                             "--port", str(port)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert proc.poll() is None, log.read_text(errors="replace")
        try:
            return httpx.get(f"{url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(healthy, 120, 0.5, "lorafleet up to answer")
        yield UpStack(url, (data_dir / "admin.key").read_text().strip(), log)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        out.close()


@pytest.fixture(scope="module")
def browser():
    assert CHROMIUM.exists(), ("Debian's Chromium is missing at /usr/bin/chromium: run scripts/setup.sh "
                               "(it runs `apt-get install -y chromium`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


def training_rows(n: int) -> str:
    rows = [{"instruction": f"What is the secret word number {i}?", "input": "", "output": f"The secret word is pineapple {i}."}
            for i in range(n)]
    return "".join(json.dumps(r) + "\n" for r in rows)
