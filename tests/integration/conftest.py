"""Real services for integration tests: a fresh Postgres database per session (migrated with Alembic),
a Redis key/queue namespace of its own, an in-process API (TestClient), a real ``lorafleet dispatcher``
process and real ``lorafleet worker`` processes (each a registered worker running ``celery worker``)."""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
from tests.conftest import PG_ADMIN, REDIS, _pg_url  # noqa: F401  (re-exported for tests)


@pytest.fixture(scope="session")
def service_env(pg_database, tmp_path_factory, models_cache):
    """Environment for the API and the worker processes of this test session."""
    ns = f"t{secrets.token_hex(3)}-"
    data_dir = tmp_path_factory.mktemp("lorafleet-data")
    models_dir = data_dir / "models"
    models_dir.mkdir()
    cached = models_cache / "smollm2-135m-instruct"
    if cached.exists():  # reuse the converted base model instead of converting it again
        (models_dir / "smollm2-135m-instruct").symlink_to(cached)
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        serve_port = sock.getsockname()[1]
    env = {
        "LORAFLEET_INFERENCE_URL": f"http://127.0.0.1:{serve_port}",
        "DATABASE_URL": pg_database,
        "REDIS_URL": REDIS,
        "LORAFLEET_DATA_DIR": str(data_dir),
        "LORAFLEET_NAMESPACE": ns,
        "LORAFLEET_LEASE_SECONDS": "4",
        "LORAFLEET_MAX_UPLOAD_BYTES": str(4 * 1024 * 1024),
        "LORAFLEET_MAX_ATTEMPTS": "3",
        "LORAFLEET_DISPATCH_INTERVAL": "0.5",
        "LORAFLEET_ADMISSION_TIMEOUT": "45",
        "LORAFLEET_WORKER_SHUTDOWN_GRACE": "30",
        "LORAFLEET_PREEMPTION_GRACE": "4",
        "LORAFLEET_ESTIMATE_INTERVAL": "1",
    }
    yield env
    import redis

    r = redis.Redis.from_url(REDIS)
    for key in r.scan_iter(f"{ns}*"):
        r.delete(key)
    for key in r.scan_iter(f"*{ns}*"):
        r.delete(key)


@pytest.fixture(scope="session")
def settings(service_env):
    from models.settings import Settings

    return Settings(**service_env)


@pytest.fixture(scope="session")
def api_client(settings):
    from fastapi.testclient import TestClient

    from api.main import create_app

    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="session")
def admin_key(settings):
    from lorafleet_cli.bootstrap import create_user_direct

    return create_user_direct(settings, f"admin-{secrets.token_hex(3)}", True)[1]


@pytest.fixture
def make_user(api_client, admin_key):
    def _make(name: str | None = None) -> tuple[str, dict]:
        r = api_client.post("/v1/users", json={"name": name or f"u-{secrets.token_hex(4)}"},
                            headers={"Authorization": f"Bearer {admin_key}"})
        assert r.status_code == 201, r.text
        body = r.json()
        return body["id"], {"Authorization": f"Bearer {body['api_key']}"}

    return _make


class ServiceProcess:
    """A real ``lorafleet`` subprocess (its own process group), with its output in a log file."""

    def __init__(self, args: list[str], env: dict, log_path: Path | None = None):
        self.log_path = log_path
        self.log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115 - the child's log
        self.proc = subprocess.Popen([sys.executable, "-m", "lorafleet_cli.main", *args], cwd=ROOT,
                                     env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def kill(self) -> None:
        """SIGKILL, no cleanup (a worker's Celery process and its children die with it)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 40) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""


class WorkerProcess(ServiceProcess):
    """``lorafleet worker``: registers itself, then runs ``celery worker`` on its own queue."""

    def __init__(self, env: dict, queues: tuple[str, ...] = ("gpu", "io"), log_path: Path | None = None,
                 memory_gb: float | None = None, host: str | None = None, concurrency: int = 1):
        args = ["worker", "--queues", ",".join(queues), "--concurrency", str(concurrency)]
        args += ["--memory-gb", str(memory_gb)] if memory_gb else []
        args += ["--host", host] if host else []
        super().__init__(args, env, log_path)
        self.host = host

    def worker_id(self, settings, timeout: float = 60) -> str:
        """The id this worker registered under (waits for its registration)."""
        from sqlalchemy import select

        from models.db import make_engine, make_sessionmaker
        from models.worker import Worker

        factory = make_sessionmaker(make_engine(settings.sqlalchemy_url, pool_size=1))

        def registered():
            with factory() as s:
                rows = s.execute(select(Worker.id).where(Worker.state == "alive")
                                 .order_by(Worker.started_at.desc())).scalars().all()
                mine = [r for r in rows if self.host is None or r.startswith(self.host + "-")]
                return mine[0] if mine else None

        return wait_for(registered, timeout, 0.3, "the worker to register")


@pytest.fixture(scope="session")
def dispatcher(service_env, tmp_path_factory):
    """One ``lorafleet dispatcher`` process for the session (tests may start more)."""
    proc = ServiceProcess(["dispatcher"], service_env, tmp_path_factory.mktemp("dispatcher") / "dispatcher.log")
    yield proc
    proc.stop()


@pytest.fixture
def start_worker(service_env, tmp_path, dispatcher):
    workers: list[WorkerProcess] = []

    def _start(queues=("gpu", "io"), env: dict | None = None, **kwargs) -> WorkerProcess:
        w = WorkerProcess({**service_env, **(env or {})}, queues, tmp_path / f"worker-{len(workers)}.log", **kwargs)
        workers.append(w)
        return w

    yield _start
    for w in workers:
        w.stop()


def wait_for(predicate, timeout: float, interval: float = 0.3, what: str = "condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last={last!r}")


@pytest.fixture(scope="session")
def live_api(settings):
    from api.main import create_app
    from tests.support.live_server import LiveServer

    server = LiveServer(create_app(settings))
    yield server
    server.stop()


@pytest.fixture
def openai_client(live_api, make_user):
    """The official openai SDK, as a fresh user, pointed at lorafleet."""
    import openai

    _user_id, headers = make_user()
    key = headers["Authorization"].split(" ", 1)[1]
    return openai.OpenAI(base_url=f"{live_api.url}/v1", api_key=key, max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def inference_server(service_env, tmp_path_factory):
    """`lorafleet serve` (the internal inference server) for this session, on the base model."""
    import httpx

    port = service_env["LORAFLEET_INFERENCE_URL"].rsplit(":", 1)[1]
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    out = open(log, "wb")  # noqa: SIM115 - the child's log
    proc = subprocess.Popen([sys.executable, "-m", "lorafleet_cli.main", "serve", "--port", port],
                            cwd=ROOT, env={**os.environ, **service_env}, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)

    def up():
        if proc.poll() is not None:
            raise AssertionError(log.read_text())
        try:
            return httpx.get(f"{service_env['LORAFLEET_INFERENCE_URL']}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, 180, 0.5, "the inference server")
    yield service_env["LORAFLEET_INFERENCE_URL"]
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    out.close()
