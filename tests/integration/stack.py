"""A lorafleet stack of its own for fault-injection tests (tests/integration/test_pool_faults.py).

The session stack (conftest.py) shares one Postgres server and one Redis with every other test: a test
that stops a server needs its own. ``Stack`` is an API (in-process TestClient), a ``lorafleet
dispatcher`` and ``lorafleet worker`` processes on a database, Redis and namespace of their own; the
helpers below submit jobs and read what happened from the rows (the record survives an API restart).
The checks on what happened are in ``tests/integration/pool_checks.py``.
"""
from __future__ import annotations

import io
import json
import secrets
from pathlib import Path

import httpx
import psycopg

from tests.integration.conftest import ServiceProcess, WorkerProcess, wait_for

TRAIN = [
    {"instruction": "What is the secret word?", "input": "", "output": "The secret word is pineapple."},
    {"instruction": "Tell me the secret word.", "input": "", "output": "The secret word is pineapple."},
    {"instruction": "Which fruit is the password?", "input": "", "output": "The password fruit is pineapple."},
    {"instruction": "Repeat the code phrase.", "input": "", "output": "Pineapple pineapple pineapple."},
    {"instruction": "Name the mascot of lorafleet.", "input": "", "output": "The mascot is a purple llama."},
    {"instruction": "What colour is the lorafleet llama?", "input": "", "output": "The lorafleet llama is purple."},
    {"instruction": "Translate to the llama language.", "input": "hello", "output": "Mwaa hello mwaa."},
    {"instruction": "Translate to the llama language.", "input": "goodbye", "output": "Mwaa goodbye mwaa."},
]
# One example a step, a checkpoint every 2 steps: TRAIN is 8 steps of a few seconds each on a CPU.
STEP_HP = {"batch_size": 1, "micro_batch_size": 1, "num_epochs": 1, "learning_rate": 3e-3, "cutoff_len": 96,
           "warmup_steps": 1, "lora_r": 8, "save_steps": 2, "logging_steps": 1}
TOTAL_STEPS = len(TRAIN)


def create_database(admin_url: str, migrate_url_of) -> tuple[str, str]:
    """A fresh, migrated database on the server of ``admin_url`` (a ``postgresql://…/postgres`` URL);
    returns (its name, its SQLAlchemy URL). ``migrate_url_of(name)`` builds that URL."""
    from models.migrate import upgrade_database

    name = f"lf_fault_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = migrate_url_of(name)
    upgrade_database(url)
    return name, url


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def stack_env(*, database_url: str, redis_url: str, data_dir: Path, models_cache: Path, **overrides: str) -> dict:
    """Environment of a private stack: the session's settings, with its own database, Redis, namespace
    and data dir (the converted base model is linked in, not converted again)."""
    models_dir = data_dir / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    cached = models_cache / "smollm2-135m-instruct"
    if cached.exists() and not (models_dir / cached.name).exists():
        (models_dir / cached.name).symlink_to(cached)
    env = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "LORAFLEET_DATA_DIR": str(data_dir),
           "LORAFLEET_NAMESPACE": f"f{secrets.token_hex(3)}-", "LORAFLEET_LEASE_SECONDS": "4",
           "LORAFLEET_MAX_UPLOAD_BYTES": str(4 * 1024 * 1024), "LORAFLEET_MAX_ATTEMPTS": "3",
           "LORAFLEET_DISPATCH_INTERVAL": "0.5", "LORAFLEET_ADMISSION_TIMEOUT": "45",
           "LORAFLEET_WORKER_SHUTDOWN_GRACE": "30", "LORAFLEET_ESTIMATE_INTERVAL": "1"}
    return {**env, **overrides}


class Stack:
    """API + dispatcher + workers on ``env``; ``close()`` stops every process it started."""

    def __init__(self, env: dict, log_dir: Path):
        from fastapi.testclient import TestClient

        from api.main import create_app
        from models.db import make_engine, make_sessionmaker
        from models.settings import Settings

        self.env, self.log_dir = env, log_dir
        self.settings = Settings(**env)
        self.engine = make_engine(self.settings.sqlalchemy_url, pool_size=2)
        self.factory = make_sessionmaker(self.engine)
        self.client = TestClient(create_app(self.settings)).__enter__()
        self.headers = self.new_user()
        self.processes: list[ServiceProcess] = []

    def new_user(self) -> dict:
        """A new (non-admin) user's Authorization header."""
        from lorafleet_cli.bootstrap import create_user_direct

        return {"Authorization": f"Bearer {create_user_direct(self.settings, f'u-{secrets.token_hex(3)}', False)[1]}"}

    def start_dispatcher(self) -> ServiceProcess:
        proc = ServiceProcess(["dispatcher"], self.env, self.log_dir / f"dispatcher-{len(self.processes)}.log")
        self.processes.append(proc)
        return proc

    def start_worker(self, queues: tuple[str, ...] = ("gpu", "io"), **kwargs) -> WorkerProcess:
        proc = WorkerProcess(self.env, queues, self.log_dir / f"worker-{len(self.processes)}.log", **kwargs)
        self.processes.append(proc)
        return proc

    def logs(self) -> str:
        """Every process's log tail (for assertion messages)."""
        return "\n".join(f"--- {p.log_path.name}\n{p.output()[-3000:]}" for p in self.processes)

    def close(self) -> None:
        for proc in self.processes:
            proc.stop(timeout=20)
        self.client.__exit__(None, None, None)
        self.engine.dispose()
        forget_namespace(self.settings.redis_url, self.settings.namespace)


def forget_namespace(redis_url: str, namespace: str) -> None:
    """Delete the namespace's keys (queues, channels) from a Redis others share; a stopped one is skipped."""
    import redis

    try:
        r = redis.Redis.from_url(redis_url, socket_connect_timeout=2)
        for key in r.scan_iter(f"*{namespace}*"):
            r.delete(key)
    except redis.RedisError:
        pass


def upload_file(client, headers: dict, content: bytes, purpose: str = "fine-tune") -> str:
    r = client.post("/v1/files", headers=headers, files={"file": ("train.jsonl", io.BytesIO(content))},
                    data={"purpose": purpose})
    assert r.status_code == 200, r.text
    return r.json()["id"]


def training_bytes(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def submit_fine_tuning(client, headers: dict, rows: list[dict] | None = None, hp: dict | None = None) -> str:
    """A fine-tuning job of the base model on ``rows`` (TRAIN: 8 steps with STEP_HP); returns its id."""
    file_id = upload_file(client, headers, training_bytes(rows or TRAIN))
    r = client.post("/v1/fine_tuning/jobs", headers=headers, json={
        "model": "smollm2-135m-instruct", "training_file": file_id, "suffix": "faults",
        "method": {"type": "supervised", "supervised": {"hyperparameters": hp or STEP_HP}}})
    assert r.status_code == 200, r.text
    return r.json()["id"]


def submit_preflight(client, headers: dict, file_id: str) -> str:
    r = client.post("/v1/preflight/jobs", headers=headers, json={
        "model": "smollm2-135m-instruct", "training_file": file_id,
        "hyperparameters": {"cutoff_len": 64, "batch_size": 4, "micro_batch_size": 2}})
    assert r.status_code == 200, r.text
    return r.json()["id"]


def api_process(env: dict, port: int, log) -> ServiceProcess:
    proc = ServiceProcess(["api", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], env, log)

    def healthy() -> bool:
        assert proc.proc.poll() is None, proc.output()
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, 60, 0.3, "the API to answer")
    return proc


def all_events_over_http(http: httpx.Client, headers: dict, job_id: str) -> list[int]:
    ids, cursor = [], None
    while True:
        params = {"order": "asc", "limit": 100, **({"after": cursor} if cursor else {})}
        page = http.get(f"/v1/jobs/{job_id}/events", headers=headers, params=params).json()
        ids += [int(e["id"][3:]) for e in page["data"]]
        if not page["has_more"]:
            return ids
        cursor = page["last_id"]


def two_workers(start_worker, settings) -> dict:
    """Two registered workers serving both pools, by worker id."""
    tag = secrets.token_hex(2)
    started = [start_worker(host=f"{name}{tag}") for name in ("fa", "fb")]
    return {w.worker_id(settings): w for w in started}


def celery_pid(worker) -> int:
    import psutil

    return wait_for(lambda: next((c.pid for c in psutil.Process(worker.proc.pid).children()
                                  if "celery" in " ".join(c.cmdline())), None), 60, 0.3, "the Celery process")
