"""run_job when a handler stops on its own: ``{"status": "paused"}`` pauses the job (e.g. a generation
budget cap), unless the user asked to cancel meanwhile."""
from __future__ import annotations

import secrets

import pytest

from models.crud import jobs as job_crud
from models.crud.users import create_user
from models.db import session_scope
from models.job import Job, JobKind
from models.settings import Settings
from tests.worker.conftest import TEST_WORKER, admit
from worker.runner import run_job


@pytest.fixture
def settings(tmp_path):
    return Settings(LORAFLEET_DATA_DIR=str(tmp_path), LORAFLEET_LEASE_SECONDS=3)


@pytest.fixture
def job_id(db_session_factory) -> str:
    with session_scope(db_session_factory) as s:
        user, _ = create_user(session=s, name=f"p-{secrets.token_hex(4)}")
        job_id = job_crud.create_job(session=s, owner_id=user.id, kind=JobKind.generation, params={}).id
    admit(db_session_factory, job_id)
    return job_id


def test_a_handler_can_pause_its_job(db_session_factory, settings, job_id):
    status = run_job(session_factory=db_session_factory, settings=settings, job_id=job_id, worker_id=TEST_WORKER,
                     handler=lambda ctx: {"status": "paused", "reason": "budget"})
    assert status == "paused"
    with db_session_factory() as s:
        job = s.get(Job, job_id)
    assert job.status == "paused" and job.result["reason"] == "budget"
    assert job.finished_at is None and job.lease_owner is None and job.admitted_at is None


def test_a_cancel_request_wins_over_a_pause(db_session_factory, settings, job_id):
    def handler(ctx):
        with session_scope(db_session_factory) as s:
            job_crud.request_cancel(session=s, job=s.get(Job, job_id))
        ctx._stop.set()  # what the heartbeat does when it sees the request
        return {"status": "paused"}

    assert run_job(session_factory=db_session_factory, settings=settings, job_id=job_id, handler=handler,
                   worker_id=TEST_WORKER) == "cancelled"
