"""Jobs and their events: creation, lease claim / renew / finish / hand-off, expired leases, paging."""
from __future__ import annotations

from datetime import timedelta

import pytest

from models.base import utcnow
from models.crud import jobs as crud
from models.job import Job, JobKind, JobStatus


@pytest.fixture
def job(session, alice) -> Job:
    return crud.create_job(session=session, owner_id=alice.id, kind=JobKind.batch, params={"x": 1},
                           model="base")


def claim(session, job, worker="w1"):
    return crud.claim_job(session=session, job_id=job.id, worker_id=worker, lease_seconds=60, pid=123)


def test_create_sets_queue_prefix_and_a_first_event(session, job):
    assert job.id.startswith("batch_") and job.queue == "gpu"
    assert job.status == JobStatus.queued.value
    events = crud.list_events(session=session, job_id=job.id, after=None, limit=10, ascending=True)
    assert [e.message for e in events] == [f"Created batch job {job.id}"]


def test_a_new_job_waits_in_its_kinds_first_stage(session, alice):
    """contracts.job_stages: fine-tuning validates its files on the io pool first; a generation job's
    queue follows its teacher."""
    ft = crud.create_job(session=session, owner_id=alice.id, kind=JobKind.fine_tuning, params={})
    assert (ft.status, ft.queue) == (JobStatus.validating_files.value, "io")
    gen = crud.create_job(session=session, owner_id=alice.id, kind=JobKind.generation, params={}, queue="gpu")
    assert (gen.status, gen.queue) == (JobStatus.queued.value, "gpu")


def test_claim_takes_the_lease_once(session, job):
    claimed = claim(session, job)
    assert (claimed.status, claimed.lease_owner, claimed.attempt, claimed.worker_pid) == ("running", "w1", 1, 123)
    assert claimed.started_at is not None
    assert claim(session, job, "w2") is None  # the lease is held


def test_claim_keeps_the_validation_stage(session, alice):
    job = crud.create_job(session=session, owner_id=alice.id, kind=JobKind.fine_tuning, params={})
    assert claim(session, job).status == JobStatus.validating_files.value


def test_claim_refuses_a_cancelled_request(session, job):
    job.cancel_requested = True
    session.flush()
    assert claim(session, job) is None


def test_renew_extends_the_lease_and_reports_flags(session, job):
    claim(session, job)
    session.execute(Job.__table__.update().where(Job.id == job.id).values(pause_requested=True))
    assert crud.renew_lease(session=session, job_id=job.id, worker_id="w1", lease_seconds=60,
                            add_compute_seconds=2.5) == (True, False, True)
    assert crud.renew_lease(session=session, job_id=job.id, worker_id="other", lease_seconds=60,
                            add_compute_seconds=1.0)[0] is False
    session.refresh(job)
    assert job.compute_seconds == pytest.approx(2.5)


def test_finish_only_by_the_lease_holder(session, job):
    claim(session, job)
    assert not crud.finish_job(session=session, job_id=job.id, worker_id="other", status=JobStatus.succeeded)
    assert crud.finish_job(session=session, job_id=job.id, worker_id="w1", status=JobStatus.succeeded,
                           result={"ok": True})
    session.refresh(job)
    assert (job.status, job.result, job.lease_owner) == ("succeeded", {"ok": True}, None)
    assert job.finished_at is not None


def test_pause_releases_the_admission(session, job):
    job.admitted_at = utcnow()
    session.flush()
    claim(session, job)
    crud.finish_job(session=session, job_id=job.id, worker_id="w1", status=JobStatus.paused)
    session.refresh(job)
    assert (job.status, job.admitted_at, job.finished_at, job.pause_requested) == ("paused", None, None, False)


def test_hand_off_requeues_on_the_next_queue(session, job):
    claim(session, job)
    assert crud.hand_off_job(session=session, job_id=job.id, worker_id="w1", queue="gpu", result={"v": 1})
    session.refresh(job)
    assert (job.status, job.queue, job.lease_owner, job.admitted_at, job.result) == (
        "queued", "gpu", None, None, {"v": 1})
    assert not crud.hand_off_job(session=session, job_id=job.id, worker_id="w1", queue="gpu", result=None)


def test_an_expired_lease_is_found_and_can_be_claimed_again(session, job):
    claim(session, job)
    assert crud.expired_running_jobs(session=session) == []
    job.lease_expires_at = utcnow() - timedelta(seconds=1)
    session.flush()
    assert [j.id for j in crud.expired_running_jobs(session=session)] == [job.id]
    again = claim(session, job, "w2")
    assert (again.lease_owner, again.attempt) == ("w2", 2)


def test_cancel_of_a_queued_job_ends_it(session, job):
    crud.request_cancel(session=session, job=job)
    assert (job.status, job.cancel_requested) == ("cancelled", True)


def test_cancel_of_a_running_job_is_cooperative(session, job):
    claim(session, job)
    crud.request_cancel(session=session, job=job)
    assert (job.status, job.cancel_requested) == ("running", True)


def test_event_paging_both_directions(session, job):
    for i in range(5):
        crud.add_event(session=session, job_id=job.id, message=f"m{i}")
    asc = crud.list_events(session=session, job_id=job.id, after=None, limit=3, ascending=True)
    assert [e.message for e in asc] == ["Created batch job " + job.id, "m0", "m1"]
    nxt = crud.list_events(session=session, job_id=job.id, after=asc[-1].id, limit=10, ascending=True)
    assert [e.message for e in nxt] == ["m2", "m3", "m4"]
    desc = crud.list_events(session=session, job_id=job.id, after=None, limit=2, ascending=False)
    assert [e.message for e in desc] == ["m4", "m3"]
    older = crud.list_events(session=session, job_id=job.id, after=desc[-1].id, limit=2, ascending=False)
    assert [e.message for e in older] == ["m2", "m1"]


def test_list_jobs_is_per_owner_newest_first_with_a_cursor(session, alice, bob):
    jobs = [crud.create_job(session=session, owner_id=alice.id, kind=JobKind.batch, params={}) for _ in range(3)]
    crud.create_job(session=session, owner_id=bob.id, kind=JobKind.batch, params={})
    page = crud.list_jobs(session=session, owner_id=alice.id, kind=None, after=None, limit=2)
    assert len(page) == 2 and {j.owner_id for j in page} == {alice.id}
    rest = crud.list_jobs(session=session, owner_id=alice.id, kind="batch", after=page[-1].id, limit=10)
    assert {j.id for j in page + rest} == {j.id for j in jobs}
    assert crud.list_jobs(session=session, owner_id=alice.id, kind="eval", after=None, limit=10) == []


def test_get_owned_job_hides_other_users_jobs(session, job, bob):
    assert crud.get_owned_job(session=session, job_id=job.id, owner_id=job.owner_id) is job
    assert crud.get_owned_job(session=session, job_id=job.id, owner_id=bob.id) is None
    assert crud.get_owned_job(session=session, job_id=job.id, owner_id=job.owner_id, kind="fine_tuning") is None
