"""Admission by weighted fair share with per-user caps; the reaper re-queues lost jobs."""
from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from sqlalchemy import delete

from models.base import utcnow
from models.crud import jobs as job_crud
from models.crud.queue import queue_position, queue_positions
from models.crud.users import create_user
from models.db import session_scope
from models.job import Job, JobKind
from models.settings import Settings
from models.user import User
from worker.dispatcher import dispatch_once


@pytest.fixture
def clean_jobs(db_session_factory):
    with session_scope(db_session_factory) as s:
        s.execute(delete(Job))
    yield


def make_users(factory, n):
    with session_scope(factory) as s:
        return [create_user(session=s, name=f"d-{secrets.token_hex(4)}")[0].id for _ in range(n)]


def submit(factory, owner, kind=JobKind.batch) -> str:  # one stage, on the gpu pool
    with session_scope(factory) as s:
        return job_crud.create_job(session=s, owner_id=owner, kind=kind, params={}).id


def test_fair_share_interleaves_users_and_respects_slots(db_session_factory, clean_jobs, tmp_path):
    settings = Settings(LORAFLEET_DATA_DIR=str(tmp_path), LORAFLEET_GPU_SLOTS=2, LORAFLEET_MAX_RUNNING_PER_USER=5)
    heavy, light = make_users(db_session_factory, 2)
    heavy_jobs = [submit(db_session_factory, heavy) for _ in range(4)]
    light_jobs = [submit(db_session_factory, light) for _ in range(2)]
    with session_scope(db_session_factory) as s:  # heavy used the GPUs a lot recently
        old = job_crud.create_job(session=s, owner_id=heavy, kind=JobKind.fine_tuning, params={})
        old.status, old.compute_seconds = "succeeded", 3600.0
    sent = []
    admitted = dispatch_once(db_session_factory, settings, sent.append)
    assert len(admitted) == 2 and [j.id for j in sent] == admitted
    # The light user's jobs go first although the heavy user submitted earlier.
    assert admitted == light_jobs
    assert dispatch_once(db_session_factory, settings, sent.append) == []  # no free slot
    with session_scope(db_session_factory) as s:
        positions = queue_positions(s, "gpu")
        # The per-job COUNT the API uses agrees with the full ordering.
        assert {j: queue_position(s, s.get(Job, j)) for j in positions} == positions
    assert positions[light_jobs[0]] == 1 and [positions[j] for j in heavy_jobs] == [3, 4, 5, 6]


def test_per_user_cap(db_session_factory, clean_jobs, tmp_path):
    settings = Settings(LORAFLEET_DATA_DIR=str(tmp_path), LORAFLEET_GPU_SLOTS=4, LORAFLEET_MAX_RUNNING_PER_USER=1)
    (user,) = make_users(db_session_factory, 1)
    for _ in range(3):
        submit(db_session_factory, user)
    assert len(dispatch_once(db_session_factory, settings, lambda j: None)) == 1


def test_users_weight_and_cap_from_the_database_reach_the_policy(db_session_factory, clean_jobs, tmp_path):
    settings = Settings(LORAFLEET_DATA_DIR=str(tmp_path), LORAFLEET_GPU_SLOTS=4, LORAFLEET_MAX_RUNNING_PER_USER=2)
    vip, other = make_users(db_session_factory, 2)
    with session_scope(db_session_factory) as s:
        user = s.get(User, vip)
        user.share_weight, user.max_running_jobs = 100.0, 3
        old = job_crud.create_job(session=s, owner_id=vip, kind=JobKind.fine_tuning, params={})
        old.status, old.compute_seconds = "succeeded", 3600.0
    vip_jobs = [submit(db_session_factory, vip) for _ in range(3)]
    other_jobs = [submit(db_session_factory, other) for _ in range(2)]
    # other's first job goes first (no usage); then vip's weighted usage (3600/100) stays below the charge
    # of one running job of other, and vip's own cap (3) lets a third job past the default cap (2).
    assert dispatch_once(db_session_factory, settings, lambda j: None) == [other_jobs[0], *vip_jobs]


def test_reaper_requeues_then_fails(db_session_factory, clean_jobs, tmp_path):
    settings = Settings(LORAFLEET_DATA_DIR=str(tmp_path), LORAFLEET_MAX_ATTEMPTS=2)
    (user,) = make_users(db_session_factory, 1)
    job_id = submit(db_session_factory, user)
    for attempt, expected in ((1, "queued"), (2, "failed")):
        with session_scope(db_session_factory) as s:
            job = s.get(Job, job_id)
            job.status, job.attempt, job.lease_owner = "running", attempt, "dead-worker"
            job.lease_expires_at = utcnow() - timedelta(seconds=1)
        sent = []
        dispatch_once(db_session_factory, settings, sent.append)
        with db_session_factory() as s:
            job = s.get(Job, job_id)
            assert job.status == expected
            if expected == "queued":
                assert [j.id for j in sent] == [job_id]  # re-admitted at once
            else:
                assert job.error["code"] == "worker_lost"


def test_an_admitted_job_is_sent_once(db_session_factory, clean_jobs, tmp_path):
    settings = Settings(LORAFLEET_DATA_DIR=str(tmp_path))
    (user,) = make_users(db_session_factory, 1)
    io_job = submit(db_session_factory, user, JobKind.preflight)
    gpu_job = submit(db_session_factory, user, JobKind.fine_tuning)
    sent = []
    for _ in range(3):
        dispatch_once(db_session_factory, settings, lambda j: sent.append(j.id))
    assert sorted(sent) == sorted([io_job, gpu_job])
    with db_session_factory() as s:
        assert all(s.get(Job, j).admitted_at is not None for j in (io_job, gpu_job))
