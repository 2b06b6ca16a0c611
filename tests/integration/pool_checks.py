"""What the pool's fault tests read and check: a job's row and events straight from the database (the
record outlives an API restart), polled through database outages; and the promises on one job's events
(``assert_lifecycle``: never admitted twice without a take-back, never claimed twice at once, claimed
only where it was placed), on its training steps and on a worker's slots."""
from __future__ import annotations

from tests.integration.conftest import wait_for
from tests.integration.stack import TRAIN, submit_preflight, training_bytes, upload_file

TERMINAL = ("succeeded", "failed", "cancelled")
SMALL_FILE = training_bytes(TRAIN[:6])  # a quick preflight's training file


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
    admission, a claim's end only while claimed; the walk ends in ``final``. (An admission whose send
    the broker refused never happened: the dispatcher withdraws its event.)"""
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
    want = {"ended"} if final in TERMINAL else {"waiting"}
    assert state in want, f"ended in {state}: {trail}"


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


def first_checkpoint(factory, job_id: str) -> int:
    def saved():
        return max((e.data["step"] for e in job_events(factory, job_id)
                    if e.message.startswith("Checkpoint saved")), default=0)

    return wait_for(saved, 300, 0.3, f"a checkpoint of {job_id}")


def assert_quick_job_runs(client, headers, factory) -> None:
    """A preflight submitted now is admitted, claimed and finished (the broker path works again)."""
    job_id = submit_preflight(client, headers, upload_file(client, headers, SMALL_FILE))
    done = wait_terminal(factory, job_id, 120, "a job submitted after the fault")
    assert done.status == "succeeded", done.error
    assert_lifecycle(job_events(factory, job_id))
