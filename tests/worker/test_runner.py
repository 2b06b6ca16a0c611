"""run_job without Celery: outcomes are recorded, re-delivery is a no-op, cancel is cooperative."""
from __future__ import annotations

import secrets
import threading
import time

import pytest

from models.crud import jobs as job_crud
from models.crud.users import create_user
from models.db import session_scope
from models.job import Job, JobKind
from models.settings import Settings
from worker.job_context import JobFailed
from worker.runner import run_job


@pytest.fixture
def settings(tmp_path):
    return Settings(LORAFLEET_DATA_DIR=str(tmp_path), LORAFLEET_LEASE_SECONDS=3)


@pytest.fixture
def new_job(db_session_factory):
    def _make(params=None) -> str:
        with session_scope(db_session_factory) as s:
            user, _ = create_user(session=s, name=f"r-{secrets.token_hex(4)}")
            return job_crud.create_job(session=s, owner_id=user.id, kind=JobKind.preflight, params=params or {}).id

    return _make


def load(factory, job_id) -> Job:
    with factory() as s:
        return s.get(Job, job_id)


def test_success_records_result_and_progress(db_session_factory, settings, new_job):
    job_id = new_job()

    def handler(ctx):
        ctx.report_progress(step=2, total=2, tokens=10, force=True)
        ctx.emit("halfway", type="metrics", data={"step": 1})
        return {"answer": 42}

    assert run_job(session_factory=db_session_factory, settings=settings, job_id=job_id, handler=handler) == "succeeded"
    job = load(db_session_factory, job_id)
    assert job.result == {"answer": 42} and job.attempt == 1 and job.lease_owner is None
    assert job.progress["percent"] == 100.0 and job.finished_at is not None
    # A second delivery of the same message does nothing.
    calls = []
    assert run_job(session_factory=db_session_factory, settings=settings, job_id=job_id,
                   handler=lambda ctx: calls.append(1) or {}) == "succeeded"
    assert calls == [] and load(db_session_factory, job_id).attempt == 1


def test_failures_are_recorded_with_their_reason(db_session_factory, settings, new_job):
    a, b = new_job(), new_job()

    def user_error(ctx):
        raise JobFailed("invalid_file", "line 3: not JSON", "training_file")

    def crash(ctx):
        raise ZeroDivisionError("boom")

    assert run_job(session_factory=db_session_factory, settings=settings, job_id=a, handler=user_error) == "failed"
    assert load(db_session_factory, a).error == {"code": "invalid_file", "message": "line 3: not JSON",
                                                 "param": "training_file"}
    assert run_job(session_factory=db_session_factory, settings=settings, job_id=b, handler=crash) == "failed"
    assert load(db_session_factory, b).error["message"] == "ZeroDivisionError: boom"


def test_cancel_is_cooperative(db_session_factory, settings, new_job):
    job_id = new_job()
    steps = []

    def handler(ctx):
        for i in range(200):
            if ctx.should_stop():
                return {"status": "cancelled", "steps_done": i}
            steps.append(i)
            time.sleep(0.05)
        return {"status": "succeeded"}

    def cancel_soon():
        time.sleep(0.5)
        with session_scope(db_session_factory) as s:
            job_crud.request_cancel(session=s, job=s.get(Job, job_id))

    threading.Thread(target=cancel_soon).start()
    assert run_job(session_factory=db_session_factory, settings=settings, job_id=job_id, handler=handler) == "cancelled"
    job = load(db_session_factory, job_id)
    assert job.status == "cancelled" and 0 < job.result["steps_done"] < 200


def test_a_live_lease_blocks_a_second_worker(db_session_factory, settings, new_job):
    job_id = new_job()
    started = threading.Event()

    def slow(ctx):
        started.set()
        time.sleep(1.5)
        return {}

    t = threading.Thread(target=run_job, kwargs={"session_factory": db_session_factory, "settings": settings,
                                                     "job_id": job_id, "handler": slow, "worker_id": "w1"})
    t.start()
    started.wait(10)
    assert run_job(session_factory=db_session_factory, settings=settings, job_id=job_id,
                   handler=lambda ctx: {"dup": True}, worker_id="w2") == "running"
    t.join()
    assert load(db_session_factory, job_id).result == {}


def test_next_stage_after_the_last_is_refused_by_the_runner(tmp_path):
    from contracts.job_stages import first_stage
    from models.settings import Settings
    from worker.job_context import JobContext, NextStage

    ctx = JobContext(job_id="j", kind="fine_tuning", stage="validating_files", owner_id="u", model="m", params={},
                     attempt=1, settings=Settings(LORAFLEET_DATA_DIR=str(tmp_path)), session_factory=None)
    hand_off = NextStage.after(ctx, {"validation": {"n_examples": 3}})
    assert (hand_off.queue, hand_off.result) == ("gpu", {"validation": {"n_examples": 3}})
    assert hand_off.message == first_stage("fine_tuning").done
    ctx.stage = "running"
    with pytest.raises(ValueError, match="last stage"):
        NextStage.after(ctx)
