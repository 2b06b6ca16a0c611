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


def place(session, job, worker="w1"):
    """What the dispatcher does: admit the job to a worker."""
    job.admitted_at, job.worker_id = utcnow(), worker
    session.flush()


def claim(session, job, worker="w1"):
    return crud.claim_job(session=session, job_id=job.id, worker_id=worker, lease_seconds=60, pid=123)


def test_create_sets_queue_prefix_and_a_first_event(session, job):
    assert job.id.startswith("batch_") and job.queue == "gpu" and job.enqueued_at is not None
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


def test_only_the_worker_a_job_was_placed_on_claims_it_once_with_a_fresh_token(session, job):
    assert claim(session, job) is None  # not admitted yet
    place(session, job, "w1")
    assert claim(session, job, "w2") is None  # placed on w1
    claimed = claim(session, job)
    assert (claimed.status, claimed.lease_owner, claimed.attempt, claimed.worker_pid) == ("running", "w1", 0, 123)
    assert claimed.started_at is not None and len(claimed.claim_token) == 32
    assert claim(session, job) is None  # held: a duplicate message does nothing


def test_claim_keeps_the_validation_stage(session, alice):
    job = crud.create_job(session=session, owner_id=alice.id, kind=JobKind.fine_tuning, params={})
    place(session, job)
    assert claim(session, job).status == JobStatus.validating_files.value


def test_claim_refuses_a_cancelled_request(session, job):
    place(session, job)
    job.cancel_requested = True
    session.flush()
    assert claim(session, job) is None


def test_renew_extends_the_lease_and_reports_flags(session, job):
    place(session, job)
    token = claim(session, job).claim_token
    session.execute(Job.__table__.update().where(Job.id == job.id).values(pause_requested=True))
    assert crud.renew_lease(session=session, job_id=job.id, token=token, lease_seconds=60,
                            add_compute_seconds=2.5) == (True, False, True)
    assert crud.renew_lease(session=session, job_id=job.id, token="stale", lease_seconds=60,
                            add_compute_seconds=1.0)[0] is False
    session.refresh(job)
    assert job.compute_seconds == pytest.approx(2.5)


def test_writes_are_fenced_by_the_claims_token(session, job):
    place(session, job)
    token = claim(session, job).claim_token
    crud.assert_claim(session=session, job_id=job.id, token=token)
    with pytest.raises(crud.ClaimLost):
        crud.assert_claim(session=session, job_id=job.id, token="a-stale-token")
    assert crud.finish_job(session=session, job_id=job.id, token="a-stale-token", status=JobStatus.succeeded) is None
    assert crud.finish_job(session=session, job_id=job.id, token=token, status=JobStatus.succeeded,
                           result={"ok": True}) == "succeeded"
    session.refresh(job)
    assert (job.status, job.result, job.lease_owner, job.claim_token) == ("succeeded", {"ok": True}, None, None)
    assert job.finished_at is not None
    with pytest.raises(crud.ClaimLost):  # once finished, the old claim writes nothing either
        crud.assert_claim(session=session, job_id=job.id, token=token)


def test_a_users_pause_stays_paused_a_preemption_requeues(session, job, alice):
    place(session, job)
    token = claim(session, job).claim_token
    crud.request_pause(session=session, job=job)
    assert crud.finish_job(session=session, job_id=job.id, token=token, status=JobStatus.cancelled) == "paused"
    session.refresh(job)
    assert (job.status, job.admitted_at, job.worker_id, job.finished_at, job.pause_requested) == (
        "paused", None, None, None, False)
    crud.resume_paused(session=session, job=job)
    place(session, job)
    token = claim(session, job).claim_token
    crud.request_pause(session=session, job=job, reason="preempt")
    assert crud.finish_job(session=session, job_id=job.id, token=token, status=JobStatus.paused) == "queued"
    session.refresh(job)
    assert (job.status, job.admitted_at, job.lease_owner, job.pause_reason, job.attempt) == (
        "queued", None, None, None, 0)
    with pytest.raises(crud.InvalidTransition):
        crud.resume_paused(session=session, job=job)


def test_a_cancel_wins_over_a_pause(session, job):
    place(session, job)
    token = claim(session, job).claim_token
    crud.request_pause(session=session, job=job, reason="preempt")
    crud.request_cancel(session=session, job=job)
    assert crud.finish_job(session=session, job_id=job.id, token=token, status=JobStatus.paused) == "cancelled"


def test_hand_off_requeues_on_the_next_queue_without_an_attempt(session, job):
    place(session, job)
    token = claim(session, job).claim_token
    assert crud.hand_off_job(session=session, job_id=job.id, token=token, queue="gpu", result={"v": 1})
    session.refresh(job)
    assert (job.status, job.queue, job.lease_owner, job.admitted_at, job.result, job.attempt) == (
        "queued", "gpu", None, None, {"v": 1}, 0)
    assert not crud.hand_off_job(session=session, job_id=job.id, token=token, queue="gpu", result=None)


@pytest.mark.parametrize("reason, status", [("user", "paused"), ("preempt", "queued"), ("drain", "queued")])
def test_a_pause_asked_during_a_stage_holds_at_the_hand_off(session, job, reason, status):
    place(session, job)
    token = claim(session, job).claim_token
    crud.request_pause(session=session, job=job, reason=reason)
    assert crud.hand_off_job(session=session, job_id=job.id, token=token, queue="gpu", result=None)
    session.refresh(job)
    assert (job.status, job.queue, job.pause_requested, job.lease_owner) == (status, "gpu", False, None)
    if status == "paused":
        crud.resume_paused(session=session, job=job)
        assert (job.status, job.queue) == ("queued", "gpu")


def test_a_cancel_asked_during_a_stage_ends_the_job_at_the_hand_off(session, job):
    place(session, job)
    token = claim(session, job).claim_token
    crud.request_cancel(session=session, job=job)
    assert crud.hand_off_job(session=session, job_id=job.id, token=token, queue="gpu", result=None)
    session.refresh(job)
    assert (job.status, job.lease_owner) == ("cancelled", None) and job.finished_at is not None


def test_an_expired_lease_spends_an_attempt_and_the_last_one_fails_with_its_reason(session, job):
    for attempt in (1, 2, 3):
        place(session, job)
        claim(session, job)
        assert crud.expired_running_jobs(session=session) == []
        job.lease_expires_at = utcnow() - timedelta(seconds=1)
        session.flush()
        (expired,) = crud.expired_running_jobs(session=session)
        requeued = crud.release_for_failure(session=session, job=expired, max_attempts=3,
                                            failure={"code": "worker_lost", "message": f"worker w{attempt} died"})
        assert requeued == (attempt < 3) and job.attempt == attempt
    assert job.status == "failed" and job.error["code"] == "worker_lost"
    assert job.error["message"] == "failed after 3 attempts; the last one: worker w3 died"


def test_cancel_of_a_queued_job_ends_it(session, job):
    crud.request_cancel(session=session, job=job)
    assert (job.status, job.cancel_requested) == ("cancelled", True)


def test_cancel_of_a_running_job_is_cooperative(session, job):
    place(session, job)
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
