"""A lorafleet stack of its own for fault-injection tests (tests/integration/test_pool_faults.py).

The session stack (conftest.py) shares one Postgres server and one Redis with every other test: a test
that stops a server needs its own. ``Stack`` is an API (in-process TestClient), a ``lorafleet
dispatcher`` and ``lorafleet worker`` processes on a database, Redis and namespace of their own; the
helpers below submit jobs and read what happened from the rows (the record survives an API restart).
``assert_lifecycle`` checks the pool's promises on one job's events: never admitted twice without a
take-back, never claimed twice at once, claimed only where it was placed.
"""
from __future__ import annotations

import io
import json
import secrets
from pathlib import Path

import psycopg

from tests.integration.conftest import ServiceProcess, WorkerProcess, wait_for

TERMINAL = ("succeeded", "failed", "cancelled")
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
           "LORAFLEET_WORKER_SHUTDOWN_GRACE": "30"}
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


def job_row(factory, job_id: str):
    from models.job import Job

    with factory() as s:
        return s.get(Job, job_id)


def job_events(factory, job_id: str) -> list:
    """The job's events, oldest first, straight from the table."""
    from sqlalchemy import select

    from models.job import JobEvent

    with factory() as s:
        return list(s.execute(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)).scalars())


def wait_terminal(factory, job_id: str, timeout: float = 240, what: str = ""):
    """The job's row once it is finished (polling through database outages)."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    def finished():
        try:
            return (j := job_row(factory, job_id)).status in TERMINAL and j
        except (OperationalError, InterfaceError):
            return None

    return wait_for(finished, timeout, 0.5, what or f"job {job_id} to finish")


def messages(events) -> list[str]:
    return [e.message for e in events]


def started_events(events) -> list:
    return [e for e in events if e.message.startswith("Job started on ")]


def _ends_claim(event) -> bool:
    """Events written when a claim ends: an outcome, a stage hand-off, a re-queue or a hand-back."""
    m = event.message
    return (m.startswith(("Job succeeded", "Job failed", "Job cancelled", "Job paused", "Handed back by worker",
                          "failed after "))
            or "re-queued to resume (attempt" in m or "next_queue" in (event.data or {}))


def assert_lifecycle(events, final: str = "succeeded") -> None:
    """Walk the events as the job's admission/claim state machine: an admission only while waiting, a
    claim only of an admission (on the worker it was placed on), a take-back only of an unclaimed
    admission, a claim's end only while claimed; the walk ends in ``final``."""
    state, placed_on, trail = "waiting", None, []
    for e in events:
        m = e.message
        trail.append(f"[{state}] {m}")
        if m.startswith("Admitted to worker "):
            assert state == "waiting", f"admitted twice without a take-back: {trail}"
            state, placed_on = "admitted", (e.data or {}).get("worker_id")
        elif m.startswith("Job started on "):
            assert state == "admitted", f"claimed without an admission, or while another claim held: {trail}"
            assert (e.data or {}).get("worker_id") == placed_on, f"claimed off its placement: {trail}"
            state = "claimed"
        elif "placing it again" in m:
            assert state == "admitted", f"a take-back of no unclaimed admission: {trail}"
            state = "waiting"
        elif _ends_claim(e):
            assert state == "claimed", f"a claim ended that was not held: {trail}"
            state = "ended" if m.startswith(("Job succeeded", "Job failed", "Job cancelled", "failed after ")) \
                else "waiting"
    assert state == ("ended" if final in TERMINAL else "waiting"), f"ended in {state}: {trail}"


def latest_step(factory, job_id: str) -> int:
    """The job's last trained step so far (0 while the database is unreachable: callers poll)."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    try:
        return max((s for _, s in step_numbers(job_events(factory, job_id))), default=0)
    except (OperationalError, InterfaceError):
        return 0


def wait_steps(factory, job_id: str, at_least: int, timeout: float = 240) -> int:
    """The job's latest trained step, once it is at least ``at_least``."""
    return wait_for(lambda: (n := latest_step(factory, job_id)) >= at_least and n, timeout, 0.3,
                    f"step {at_least} of {job_id}")


def step_numbers(events) -> list[tuple[int, int]]:
    """(event id, step) of every training-step metrics event."""
    return [(e.id, e.data["step"]) for e in events if e.type == "metrics" and "train_loss" in (e.data or {})]


def assert_steps_continue(events, total: int) -> int:
    """After each resume, steps go on from the checkpoint + 1; every step 1..total was trained. Returns
    the first resume's checkpoint step."""
    resumes = [e for e in events if e.message.startswith("Resumed from step")]
    assert resumes, messages(events)
    steps = step_numbers(events)
    for resume in resumes:
        after = [step for eid, step in steps if eid > resume.id]
        assert after and after[0] == resume.data["resumed_from_step"] + 1, (resume.message, after)
    assert sorted({s for _, s in steps}) == list(range(1, total + 1)), steps
    return resumes[0].data["resumed_from_step"]


def training_claims(events) -> list:
    """The claims of the training stage (after the validation stage handed over)."""
    handed_over = next(e.id for e in events if "next_queue" in (e.data or {}))
    return [e for e in started_events(events) if e.id > handed_over]


def assert_within_slots(claims: list, slots: int) -> None:
    """No worker ever held more claims at once than its slots."""
    for worker in {w for w, _, _ in claims}:
        edges = sorted([(s, 1) for w, s, _ in claims if w == worker] + [(e, -1) for w, _, e in claims if w == worker])
        running = peak = 0
        for _, delta in edges:
            running += delta
            peak = max(peak, running)
        assert peak <= slots, (worker, peak)


def worker_state(factory, worker_id: str) -> str:
    from models.worker import Worker

    with factory() as s:
        return s.get(Worker, worker_id).state
