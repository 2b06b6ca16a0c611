"""The dispatcher against a real database: placement on registered workers by fair share and fit,
waiting reasons, housekeeping (lost workers, expired leases, unclaimed admissions), and two dispatchers
at once never admitting a job twice."""
from __future__ import annotations

import secrets
import threading
from datetime import timedelta

import pytest
from sqlalchemy import delete, select

from models.base import utcnow
from models.crud import jobs as job_crud
from models.crud.usage import add_usage
from models.crud.users import create_user
from models.db import make_engine, make_sessionmaker, session_scope
from models.job import Job, JobKind, JobStatus
from models.settings import Settings
from models.worker import Worker
from tests.conftest import migrated_database
from worker.dispatcher import dispatch_once

GiB = 2**30


@pytest.fixture(scope="module")
def private_database():
    """A database of this module's own: the session's is shared with the integration stacks, whose
    dispatchers take the same advisory lock and whose rows a test here must never delete."""
    with migrated_database() as url:
        engine = make_engine(url)
        yield make_sessionmaker(engine)
        engine.dispose()


@pytest.fixture
def pool(private_database):
    """An empty pool: no jobs, no workers."""
    with session_scope(private_database) as s:
        s.execute(delete(Job))
        s.execute(delete(Worker))
    yield private_database


@pytest.fixture
def settings(tmp_path):
    return Settings(LORAFLEET_DATA_DIR=str(tmp_path), LORAFLEET_LEASE_SECONDS=10, LORAFLEET_MAX_RUNNING_PER_USER=10,
                    LORAFLEET_ADMISSION_TIMEOUT=30)


def add_worker(factory, *, slots=1, memory_gb=24.0, queues=("gpu",), heartbeat_age_s=0.0) -> str:
    worker_id = f"host-{secrets.token_hex(3)}"
    with session_scope(factory) as s:
        s.add(Worker(id=worker_id, host="host", device_kind="cpu", slots=slots, memory_total_bytes=int(memory_gb * GiB),
                     memory_free_bytes=int(memory_gb * GiB), queues=list(queues), base_models=[],
                     heartbeat_at=utcnow() - timedelta(seconds=heartbeat_age_s)))
    return worker_id


def new_user(factory) -> str:
    with session_scope(factory) as s:
        return create_user(session=s, name=f"d-{secrets.token_hex(4)}")[0].id


def submit(factory, owner, *, memory_gb: float = 1.0, priority: int = 0) -> str:
    """A one-stage job on the gpu pool with a known memory need."""
    with session_scope(factory) as s:
        job = job_crud.create_job(session=s, owner_id=owner, kind=JobKind.batch, params={}, priority=priority)
        job.resources = {"memory_bytes": int(memory_gb * GiB), "devices": 1, "base_model": None}
        return job.id


def finish(factory, job_id: str, gpu_seconds: float = 600.0) -> None:
    """The job ran ``gpu_seconds`` on a GPU (metered into the usage ledger, as heartbeats do) and succeeded."""
    with session_scope(factory) as s:
        job = s.get(Job, job_id)
        job.status, job.finished_at = JobStatus.succeeded.value, utcnow()
        add_usage(session=s, owner_id=job.owner_id, job_id=job.id, kind=job.kind, now=utcnow(), device_kind="cpu",
                  compute_seconds=gpu_seconds)


def row(factory, job_id) -> Job:
    with factory() as s:
        return s.get(Job, job_id)


def test_jobs_go_to_the_queue_of_the_worker_they_were_placed_on(pool, settings):
    worker = add_worker(pool, slots=2)
    user = new_user(pool)
    jobs = [submit(pool, user) for _ in range(3)]
    sent = []
    report = dispatch_once(pool, settings, lambda job: sent.append((job.id, job.worker_id)))
    assert report.admitted == jobs[:2] and sent == [(j, worker) for j in jobs[:2]]
    waiting = row(pool, jobs[2])
    assert waiting.admitted_at is None and waiting.queue_position == 1 and "free slot" in waiting.waiting_reason
    assert waiting.estimated_start is not None


def test_a_pass_without_estimates_keeps_the_last_ones_and_still_moves_positions(pool, settings):
    """Estimated starts are refreshed on their own cadence (``LORAFLEET_ESTIMATE_INTERVAL``); the passes
    between keep them and still update every queued job's position."""
    add_worker(pool, slots=1)
    user = new_user(pool)
    jobs = [submit(pool, user) for _ in range(3)]
    dispatch_once(pool, settings, lambda job: None)
    before = {j: row(pool, j).estimated_start for j in jobs[1:]}
    assert all(before.values()) and before[jobs[1]] < before[jobs[2]]
    finish(pool, jobs[0])
    report = dispatch_once(pool, settings, lambda job: None, with_estimates=False)
    assert report.admitted == [jobs[1]]
    last = row(pool, jobs[2])
    assert last.queue_position == 1 and last.estimated_start == before[jobs[2]]


def test_a_light_user_goes_before_a_heavy_users_third_job(pool, settings):
    add_worker(pool, slots=1)
    heavy, light = new_user(pool), new_user(pool)
    heavy_jobs = [submit(pool, heavy) for _ in range(6)]
    light_job = submit(pool, light)
    started = []
    for _ in range(7):
        report = dispatch_once(pool, settings, lambda job: None)
        assert len(report.admitted) == 1
        started += report.admitted
        finish(pool, report.admitted[0])
    assert started.index(light_job) < started.index(heavy_jobs[2])


def test_a_job_too_big_for_one_worker_runs_on_the_other_and_one_that_fits_none_says_why(pool, settings):
    small, big = add_worker(pool, memory_gb=16), add_worker(pool, memory_gb=80)
    user = new_user(pool)
    large, huge = submit(pool, user, memory_gb=40), submit(pool, user, memory_gb=120)
    sent = {}
    dispatch_once(pool, settings, lambda job: sent.update({job.id: job.worker_id}))
    assert sent == {large: big}
    reason = row(pool, huge).waiting_reason
    assert "no registered worker fits" in reason and "120.0 GiB" in reason, reason
    assert small not in sent.values()
    later = add_worker(pool, memory_gb=141)  # a fitting worker registers: the job starts
    dispatch_once(pool, settings, lambda job: sent.update({job.id: job.worker_id}))
    assert sent[huge] == later


def test_lost_workers_expired_leases_and_unclaimed_admissions_are_taken_back(pool, settings):
    silent = add_worker(pool, heartbeat_age_s=60)  # stopped heart-beating a while ago
    user = new_user(pool)
    placed, running, unclaimed = submit(pool, user), submit(pool, user), submit(pool, user)
    live = add_worker(pool, slots=3)
    now = utcnow()
    with session_scope(pool) as s:
        a = s.get(Job, placed)
        a.admitted_at, a.worker_id = now, silent  # placed on the silent worker, never claimed
        b = s.get(Job, running)
        b.status, b.admitted_at, b.worker_id, b.lease_owner = "running", now, live, live
        b.claim_token, b.lease_expires_at = "t", now - timedelta(seconds=1)  # its lease ran out
        c = s.get(Job, unclaimed)
        c.admitted_at, c.worker_id = now - timedelta(seconds=31), live  # older than the admission timeout
    sent = []
    report = dispatch_once(pool, settings, lambda job: sent.append(job.id))
    assert report.lost_workers == [silent] and report.requeued == [running]
    assert sorted(sent) == sorted([placed, running, unclaimed])  # all three placed again, on the live worker
    b = row(pool, running)
    assert b.attempt == 1 and b.last_failure["code"] == "worker_lost" and b.worker_id == live
    with pool() as s:
        assert s.get(Worker, silent).state == "lost"


def test_a_failed_send_is_taken_back_at_once(pool, settings):
    add_worker(pool)
    job_id = submit(pool, new_user(pool))

    def broker_down(job):
        raise ConnectionError("redis is down")

    report = dispatch_once(pool, settings, broker_down)
    assert report.admitted == [] and report.unsent == [job_id]
    job = row(pool, job_id)
    assert job.admitted_at is None and job.worker_id is None
    with pool() as s:  # the admission never happened: its event is withdrawn
        messages = [e.message for e in job_crud.list_events(session=s, job_id=job_id, after=None, limit=10,
                                                             ascending=True)]
    assert not [m for m in messages if m.startswith("Admitted")]
    assert dispatch_once(pool, settings, lambda job: None).admitted == [job_id]


def test_two_dispatchers_through_a_burst_admit_each_job_once(pool, settings):
    workers = [add_worker(pool, slots=4) for _ in range(3)]
    users = [new_user(pool) for _ in range(5)]
    sent: list[str] = []
    lock = threading.Lock()

    def send(job):
        with lock:
            sent.append(job.id)

    stop = threading.Event()

    def dispatcher():
        while not stop.is_set():
            dispatch_once(pool, settings, send)

    threads = [threading.Thread(target=dispatcher) for _ in range(2)]
    for t in threads:
        t.start()
    jobs = [submit(pool, users[i % 5]) for i in range(50)]
    stop.set()
    for t in threads:
        t.join()
    dispatch_once(pool, settings, send)
    assert len(sent) == len(set(sent)) == 12  # every slot filled once, no job admitted twice
    with pool() as s:
        admitted = s.execute(select(Job.worker_id).where(Job.admitted_at.is_not(None))).scalars().all()
    assert sorted(admitted) == sorted(w for w in workers for _ in range(4))
    assert set(sent) <= set(jobs)
