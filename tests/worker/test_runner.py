"""run_job without Celery: outcomes are recorded, re-delivery is a no-op, cancel is cooperative, writes are
fenced by the claim's token, and only crashes spend attempts."""
from __future__ import annotations

import threading
import time

import pytest

from models.crud import jobs as job_crud
from models.db import session_scope
from models.job import Job, JobKind
from models.settings import Settings
from tests.worker.conftest import TEST_WORKER, admit
from worker.job_context import JobFailed
from worker.runner import run_job


@pytest.fixture
def settings(tmp_path):
    return Settings(LORAFLEET_DATA_DIR=str(tmp_path), LORAFLEET_LEASE_SECONDS=3)


def load(factory, job_id) -> Job:
    with factory() as s:
        return s.get(Job, job_id)


def run(factory, settings, job_id, handler, worker_id=TEST_WORKER) -> str:
    return run_job(session_factory=factory, settings=settings, job_id=job_id, handler=handler, worker_id=worker_id)


def test_success_records_result_and_progress(db_session_factory, settings, admitted_job):
    job_id = admitted_job()

    def handler(ctx):
        ctx.report_progress(step=2, total=2, tokens=10, force=True)
        ctx.emit("halfway", type="metrics", data={"step": 1})
        return {"answer": 42}

    assert run(db_session_factory, settings, job_id, handler) == "succeeded"
    job = load(db_session_factory, job_id)
    assert job.result == {"answer": 42} and job.attempt == 0 and job.lease_owner is None and job.claim_token is None
    assert job.progress["percent"] == 100.0 and job.finished_at is not None
    # A second delivery of the same message does nothing.
    calls = []
    assert run(db_session_factory, settings, job_id, lambda ctx: calls.append(1) or {}) == "succeeded"
    assert calls == [] and load(db_session_factory, job_id).attempt == 0


def test_failures_are_recorded_with_their_reason(db_session_factory, settings, admitted_job):
    a, b = admitted_job(), admitted_job()

    def user_error(ctx):
        raise JobFailed("invalid_file", "line 3: not JSON", "training_file")

    def crash(ctx):
        raise ZeroDivisionError("boom")

    assert run(db_session_factory, settings, a, user_error) == "failed"
    assert load(db_session_factory, a).error == {"code": "invalid_file", "message": "line 3: not JSON",
                                                 "param": "training_file"}
    assert run(db_session_factory, settings, b, crash) == "failed"
    assert load(db_session_factory, b).error["message"] == "ZeroDivisionError: boom"


def test_cancel_is_cooperative(db_session_factory, settings, admitted_job):
    job_id = admitted_job()
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
    assert run(db_session_factory, settings, job_id, handler) == "cancelled"
    job = load(db_session_factory, job_id)
    assert job.status == "cancelled" and 0 < job.result["steps_done"] < 200


def test_a_live_lease_blocks_a_second_worker(db_session_factory, settings, admitted_job):
    job_id = admitted_job()
    started = threading.Event()

    def slow(ctx):
        started.set()
        time.sleep(1.5)
        return {}

    t = threading.Thread(target=run_job, kwargs={"session_factory": db_session_factory, "settings": settings,
                                                     "job_id": job_id, "handler": slow, "worker_id": TEST_WORKER})
    t.start()
    started.wait(10)
    assert run_job(session_factory=db_session_factory, settings=settings, job_id=job_id,
                   handler=lambda ctx: {"dup": True}, worker_id="w2") == "running"  # not placed on w2
    assert run(db_session_factory, settings, job_id, lambda ctx: {"dup": True}) == "running"  # a duplicate
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


def test_a_taken_over_claim_can_write_nothing_and_stops_the_job(db_session_factory, settings, admitted_job):
    """The dispatcher re-queued the job (its lease ran out) and another worker claimed it: every write of
    the first worker (events, progress, the outcome) is refused and its handler is told to stop."""
    job_id = admitted_job()
    refused = []

    def handler(ctx):
        ctx.emit("before the takeover")
        with session_scope(db_session_factory) as s:  # what the reaper and a second claim do
            job = s.get(Job, job_id)
            job_crud.release_for_failure(session=s, job=job, failure={"code": "worker_lost", "message": "gone"},
                                         max_attempts=3)
        admit(db_session_factory, job_id, "w-other")
        with session_scope(db_session_factory) as s:
            assert job_crud.claim_job(session=s, job_id=job_id, worker_id="w-other", lease_seconds=30, pid=1)
        for write in (lambda: ctx.emit("after the takeover"), lambda: ctx.report_progress(step=1, total=2, force=True),
                      lambda: ctx.record_usage(tokens_trained=5)):
            try:
                write()
            except job_crud.ClaimLost:
                refused.append(True)
        assert ctx.should_stop()
        return {"stale": True}

    assert run(db_session_factory, settings, job_id, handler) == "lease_lost"
    assert refused == [True, True, True]
    job = load(db_session_factory, job_id)
    assert (job.status, job.lease_owner, job.result, job.progress, job.attempt) == ("running", "w-other", {}, {}, 1)
    with db_session_factory() as s:
        messages = [e.message for e in job_crud.list_events(session=s, job_id=job_id, after=None, limit=50,
                                                             ascending=True)]
    assert "before the takeover" in messages and "after the takeover" not in messages


def test_stage_hand_offs_and_pauses_spend_no_attempt(db_session_factory, settings, admitted_job):
    job_id = admitted_job(kind=JobKind.fine_tuning)
    from worker.job_context import NextStage

    assert run(db_session_factory, settings, job_id, lambda ctx: NextStage.after(ctx, {"validated": 1})) == "queued"
    for _ in range(5):  # pause at a checkpoint and resume, five times
        admit(db_session_factory, job_id)

        def pause_soon(ctx):
            with session_scope(db_session_factory) as s:
                job_crud.request_pause(session=s, job=s.get(Job, job_id))
            ctx._stop.set()
            return {"status": "paused"}

        assert run(db_session_factory, settings, job_id, pause_soon) == "paused"
        with session_scope(db_session_factory) as s:
            job_crud.resume_paused(session=s, job=s.get(Job, job_id))
    admit(db_session_factory, job_id)
    assert run(db_session_factory, settings, job_id, lambda ctx: {"done": True}) == "succeeded"
    assert load(db_session_factory, job_id).attempt == 0


def test_a_preempted_job_goes_back_in_line_by_itself(db_session_factory, settings, admitted_job):
    job_id = admitted_job(kind=JobKind.fine_tuning)

    def preempted(ctx):
        with session_scope(db_session_factory) as s:
            job_crud.request_pause(session=s, job=s.get(Job, job_id), reason="preempt")
        ctx._stop.set()
        return {"status": "paused", "steps": 3}

    assert run(db_session_factory, settings, job_id, preempted) == "queued"
    job = load(db_session_factory, job_id)
    assert (job.status, job.attempt, job.admitted_at, job.worker_id, job.pause_requested) == (
        "validating_files", 0, None, None, False)  # back in line in the stage it was in
    assert job.enqueued_at is not None


def test_a_database_error_spends_an_attempt_and_the_last_reason_fails_the_job(db_session_factory, settings,
                                                                             admitted_job):
    from sqlalchemy.exc import OperationalError

    job_id = admitted_job()

    def db_blinked(ctx):
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))

    for attempt in (1, 2):
        assert run(db_session_factory, settings, job_id, db_blinked) == "queued"
        job = load(db_session_factory, job_id)
        assert job.attempt == attempt and job.last_failure["code"] == "transient_error"
        admit(db_session_factory, job_id)
    assert run(db_session_factory, settings, job_id, db_blinked) == "failed"
    job = load(db_session_factory, job_id)
    assert job.attempt == 3 and "failed after 3 attempts" in job.error["message"]
    assert "database unreachable" in job.error["message"]
