"""The generation handler through ``run_job`` (no Celery), on the real database, with the engine's
scripted in-process teacher: outcomes, dataset publication, usage, budget pause, idempotent re-runs."""
from __future__ import annotations

import json
import secrets

import pytest
from sqlalchemy import select

from contracts.configs import GenerationJobConfig
from models.crud import jobs as job_crud
from models.crud.users import create_user
from models.db import session_scope
from models.file import Dataset, File
from models.job import Job, JobEvent, JobKind, UsageRecord
from models.secrets import encrypt_secret
from models.settings import Settings
from models.storage import ArtifactStore
from tests.worker.conftest import TEST_WORKER, admit
from tests.worker.ml.selfinstruct.conftest import ScriptedTeacher
from worker.handlers import generation as handler
from worker.handlers import teachers as teachers_module
from worker.handlers.generation_dataset import publish_dataset
from worker.runner import run_job


@pytest.fixture
def settings(tmp_path):
    return Settings(LORAFLEET_DATA_DIR=str(tmp_path), LORAFLEET_LEASE_SECONDS=3)


@pytest.fixture
def teachers(monkeypatch):
    """Every job built in the test gets a ScriptedTeacher; the api_key it was built with is recorded."""
    built = []

    def fake_build(cfg, api_key=None, continuation=True):
        t = ScriptedTeacher(price_per_request=0.01)
        built.append((t, api_key))
        return t

    monkeypatch.setattr(teachers_module, "build_teacher", fake_build)
    return built


@pytest.fixture
def new_job(db_session_factory, settings):
    def _make(**cfg) -> tuple[str, str]:
        config = GenerationJobConfig(**{"method": "alpaca", "num_instructions": 12, "request_batch_size": 1,
                                        "teacher": {"model": "scripted-teacher"}, **cfg})
        params = {"config": config.model_dump(mode="json"), "seed_file": None,
                  "teacher_api_key_encrypted": encrypt_secret(settings, "sk-unit")}
        with session_scope(db_session_factory) as s:
            user, _ = create_user(session=s, name=f"g-{secrets.token_hex(4)}")
            job = job_crud.create_job(session=s, owner_id=user.id, kind=JobKind.generation, params=params, queue="io")
            return job.id, user.id

    return _make


def run(factory, settings, job_id) -> str:
    admit(factory, job_id)  # as the dispatcher places it
    return run_job(session_factory=factory, settings=settings, job_id=job_id, handler=handler.run_generation_job,
                   worker_id=TEST_WORKER)


def _teacher_totals(s, job_id: str) -> tuple[int, float]:
    """The job's teacher tokens and cost summed over its ledger rows (one per hour bucket)."""
    rows = s.execute(select(UsageRecord).where(UsageRecord.job_id == job_id)).scalars().all()
    return sum(r.teacher_tokens for r in rows), sum(r.teacher_cost_usd for r in rows)


def test_success_publishes_a_training_file_a_dataset_and_usage(db_session_factory, settings, new_job, teachers):
    job_id, owner = new_job()
    assert run(db_session_factory, settings, job_id) == "succeeded"
    assert teachers[0][1] == "sk-unit"  # the key was decrypted for the teacher
    with db_session_factory() as s:
        job = s.get(Job, job_id)
        ds = s.execute(select(Dataset).where(Dataset.job_id == job_id)).scalar_one()
        f = s.get(File, ds.file_id)
        usage = s.execute(select(UsageRecord).where(UsageRecord.job_id == job_id)).scalars().first()
        teacher = _teacher_totals(s, job_id)
        events = s.execute(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)).scalars().all()
    assert job.result["dataset_id"] == ds.id and job.result["training_file"] == f.id
    assert f.owner_id == ds.owner_id == usage.owner_id == owner and f.purpose == "fine-tune"
    assert f.storage_path == f"files/{owner}/{f.id}"
    store = ArtifactStore(settings.artifacts_dir)
    lines = [json.loads(x) for x in store.path(f.storage_path).read_text().splitlines()]
    assert len(lines) == ds.n_rows == job.result["n_kept"] and set(lines[0]) == {"instruction", "input", "output"}
    assert len(store.path(ds.rows_path).read_text().splitlines()) == ds.n_rows
    assert len(store.path(ds.rejected_path).read_text().splitlines()) == ds.n_rejected > 0
    assert sum(ds.stats["rejected_by_filter"].values()) == ds.n_rejected
    assert teacher == (job.result["tokens"]["total"], pytest.approx(job.result["cost_usd"]))
    rounds = [e for e in events if e.type == "metrics"]
    assert len(rounds) == job.result["rounds"] and rounds[0].message.startswith("Round 1: accepted ")
    assert job.progress["percent"] == 100.0 and job.progress["n_kept"] == ds.n_rows
    # publishing again (a re-delivered job that crashed after publishing) returns the same dataset
    from worker.job_context import JobContext

    with session_scope(db_session_factory) as s:  # claimed again by a re-delivered message
        row = s.get(Job, job_id)
        row.status, row.lease_owner, row.claim_token = "running", "w-again", "token-again"
    ctx = JobContext(job_id=job_id, kind="generation", stage="running", owner_id=owner, model=None,
                     params=job.params, attempt=1, settings=settings, session_factory=db_session_factory,
                     claim_token="token-again")
    out = {"dataset_path": str(ctx.work_dir / "dataset.jsonl"), "rejected_path": str(ctx.work_dir / "rejected.jsonl")}
    again = publish_dataset(ctx, GenerationJobConfig.model_validate(job.params["config"]), out)
    assert again["dataset_id"] == ds.id and again["training_file"] == f.id


def test_budget_cap_pauses_and_a_resume_continues_from_the_ledger(db_session_factory, settings, new_job, teachers):
    job_id, _ = new_job(budget_usd=0.025, num_instructions=40)
    assert run(db_session_factory, settings, job_id) == "paused"
    with session_scope(db_session_factory) as s:
        job = s.get(Job, job_id)
        assert job.result["reason"] == "budget" and job.result["cost_usd"] <= 0.025 + 1e-9
        assert job.finished_at is None and job.lease_owner is None
        warn = s.execute(select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.level == "warn")).scalars().all()
        assert any("budget cap of $0.0250" in e.message for e in warn)
        assert s.execute(select(Dataset).where(Dataset.job_id == job_id)).first() is None
        job.params = {**job.params, "config": {**job.params["config"], "budget_usd": 10.0}}
        job.status = "queued"
    assert run(db_session_factory, settings, job_id) == "succeeded"
    first, second = teachers[0][0], teachers[1][0]
    assert first.sent and not set(first.sent) & set(second.sent)  # nothing answered was paid for again
    with db_session_factory() as s:
        job = s.get(Job, job_id)
        tokens, cost = _teacher_totals(s, job_id)
    assert job.result["requests_replayed"] == len(first.sent)
    # the ledger holds each paid request once: the resumed run added only what it sent itself
    assert cost == pytest.approx(0.01 * (len(first.sent) + len(second.sent))) and tokens == job.result["tokens"]["total"]


def test_an_unreadable_key_or_missing_seed_file_fails_with_the_param(db_session_factory, settings, new_job, teachers):
    job_id, _ = new_job()
    with session_scope(db_session_factory) as s:
        job = s.get(Job, job_id)
        job.params = {**job.params, "teacher_api_key_encrypted": "not-a-fernet-token"}
    assert run(db_session_factory, settings, job_id) == "failed"
    with db_session_factory() as s:
        assert s.get(Job, job_id).error["param"] == "teacher.api_key"
    job_id, _ = new_job()
    with session_scope(db_session_factory) as s:
        job = s.get(Job, job_id)
        job.params = {**job.params, "seed_file": "file-gone"}
    assert run(db_session_factory, settings, job_id) == "failed"
    with db_session_factory() as s:
        err = s.get(Job, job_id).error
    assert err["code"] == "file_not_found" and err["param"] == "seed_file"
    assert teachers == []


def test_a_local_teacher_that_is_gone_or_foreign_fails_naming_teacher_model(db_session_factory, settings, new_job,
                                                                            teachers):
    """The adapter was deleted after submit (or belongs to someone else): failed, param teacher.model."""
    from models.registry import Adapter

    _, other = new_job()
    with session_scope(db_session_factory) as s:
        s.add(Adapter(owner_id=other, name="ft:smollm2-135m-instruct:theirs:x", base_model="smollm2-135m-instruct",
                      path="/nowhere"))
    for model in ("ft:smollm2-135m-instruct:gone:x", "ft:smollm2-135m-instruct:theirs:x"):
        job_id, _ = new_job(teacher={"model": model, "local": True})
        assert run(db_session_factory, settings, job_id) == "failed"
        with db_session_factory() as s:
            err = s.get(Job, job_id).error
        assert err["code"] == "model_not_found" and err["param"] == "teacher.model" and model in err["message"]
    assert teachers == []  # no remote teacher was built


def test_round_message_names_every_filter():
    msg = handler.round_message({"round": 2, "accepted": 5, "rejected": 12, "cost_usd": 0.0012,
                                 "total_cost_usd": 0.004, "n_instructions": 20, "target": 100,
                                 "rejected_by_filter": {"blacklist": 3, "rouge_l": 7, "word_count": 2}})
    assert msg == ("Round 3: accepted 5, rejected 12 (rouge_l: 7, blacklist: 3, word_count: 2), cost $0.0012 "
                   "(total $0.0040), 20/100 instructions")
