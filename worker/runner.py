"""Job lifecycle without Celery: claim the job, heartbeat, run the kind's handler, record the outcome.

``run_job`` is idempotent: a terminal job returns at once, a job placed on another worker or claimed
by a live one is left alone (a duplicate or stale message), and a job whose process died here is
claimed again once its lease has expired -- handlers resume from what the previous attempt left in
the job directory. Every write goes through ``JobContext.session()``, which checks the claim's
fencing token first: once the dispatcher has given the job to someone else, this worker's writes are
refused and the job stops itself.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time

from sqlalchemy.orm import Session, sessionmaker

from contracts.job_stages import RUNNING, VALIDATING_FILES
from models.base import utcnow
from models.crud import jobs as job_crud
from models.crud.usage import add_usage
from models.db import TRANSIENT_DB_ERRORS, retry_transient, session_scope
from models.job import Job, JobStatus
from models.settings import Settings
from worker.job_context import Handler, JobContext, JobFailed, JobStopped, NextStage

log = logging.getLogger(__name__)


class _Heartbeat(threading.Thread):
    """Renews the lease and meters compute seconds into the usage ledger; turns cancel/pause flags into
    ``ctx.should_stop()``; hard-kills on a stuck cancel. A database that does not answer is retried; if the
    lease cannot be renewed before it expires, the job stops (another worker may take it over)."""

    def __init__(self, ctx: JobContext, device_kind: str, cancel_grace_s: float):
        super().__init__(daemon=True, name=f"heartbeat-{ctx.job_id}")
        self.ctx, self.device_kind, self.cancel_grace_s = ctx, device_kind, cancel_grace_s
        self.done = threading.Event()
        self.cancel_seen_at: float | None = None
        self.metered_until = time.monotonic()  # compute seconds up to here are in the ledger

    def run(self) -> None:
        lease = self.ctx.settings.lease_seconds
        interval = min(5.0, max(0.5, lease / 3))
        renewed = time.monotonic()
        while not self.done.wait(interval):
            now = time.monotonic()
            try:
                ours, cancel, pause = self._renew(now - self.metered_until)
                self.metered_until = renewed = now
            except Exception:
                log.warning("heartbeat failed for %s", self.ctx.job_id, exc_info=True)
                if now - renewed > lease:  # the lease has run out: stop before someone else runs it too
                    log.error("could not renew the lease of %s for %.0f s; stopping it", self.ctx.job_id,
                              now - renewed)
                    self.ctx._lost.set()
                    return
                continue
            if not ours:
                self.ctx._lost.set()
                return
            if cancel or pause:
                self.ctx._stop.set()
                self.cancel_seen_at = self.cancel_seen_at or now
                if cancel and now - self.cancel_seen_at > self.cancel_grace_s:
                    self._hard_cancel()

    def stop_and_meter(self) -> None:
        """Stop beating and meter the seconds since the last beat (a short job is metered too)."""
        self.done.set()
        self.join(timeout=30)
        now = time.monotonic()
        try:
            self._renew(now - self.metered_until)
            self.metered_until = now
        except Exception:  # the outcome matters more than the last seconds of metering
            log.warning("could not meter the end of %s", self.ctx.job_id, exc_info=True)

    def _renew(self, elapsed_s: float) -> tuple[bool, bool, bool]:
        ctx = self.ctx
        with session_scope(ctx.session_factory) as s:
            ours, cancel, pause = job_crud.renew_lease(session=s, job_id=ctx.job_id, token=ctx.claim_token,
                                                       lease_seconds=ctx.settings.lease_seconds,
                                                       add_compute_seconds=elapsed_s)
            if ours:
                add_usage(session=s, owner_id=ctx.owner_id, job_id=ctx.job_id, kind=ctx.kind, now=utcnow(),
                          device_kind=self.device_kind if ctx.queue == "gpu" else "", compute_seconds=elapsed_s)
        return ours, cancel, pause

    def _hard_cancel(self) -> None:
        """Fallback when a handler ignores should_stop: record the cancel, then kill our own process."""
        with self.ctx.session() as s:
            job_crud.add_event(session=s, job_id=self.ctx.job_id, level="warn",
                               message="Job did not stop within the grace period; its process was killed")
            job_crud.finish_job(session=s, job_id=self.ctx.job_id, token=self.ctx.claim_token,
                                status=JobStatus.cancelled)
        os.kill(os.getpid(), signal.SIGKILL)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


Outcome = NextStage | tuple[JobStatus, "dict | None", "dict | None"]
STATUS_MESSAGES = {"succeeded": "Job succeeded", "cancelled": "Job cancelled", "paused": "Job paused",
                   "queued": "Job paused at a checkpoint and re-queued; it resumes where it stopped"}


def run_job(*, session_factory: sessionmaker[Session], settings: Settings, job_id: str, handler: Handler,
            redis_client: object | None = None, worker_id: str | None = None, device_kind: str = "cpu",
            cancel_grace_s: float = 120.0) -> str:
    """Run one stage of a job to an outcome; returns the final (or current, if not ours) status."""
    worker_id = worker_id or settings.worker_id or default_worker_id()
    ctx = retry_transient(lambda: _claim(session_factory, settings, job_id, worker_id, redis_client),
                          deadline_s=settings.lease_seconds * 2.0, what=f"claim of {job_id}")
    if isinstance(ctx, str):
        return ctx
    beat = _Heartbeat(ctx, device_kind, cancel_grace_s)
    beat.start()
    try:
        ctx.emit(f"Job started on {worker_id}" + (f" (after {ctx.attempt} lost attempts)" if ctx.attempt else ""),
                 data={"worker_id": worker_id, "attempt": ctx.attempt})
        outcome = _run_handler(ctx, handler)
        beat.stop_and_meter()
        return _record_outcome(ctx, outcome)
    except job_crud.ClaimLost:
        log.warning("job %s: this worker's claim was taken over; stopped without writing", job_id)
        return "lease_lost"
    finally:
        beat.done.set()


def _record_outcome(ctx: JobContext, outcome: Outcome | None) -> str:
    """Write the handler's outcome under the claim's fencing token; a crash that looks transient (the
    database went away) spends an attempt and re-queues the job instead of failing it."""
    if outcome is None or ctx._lost.is_set():
        return "lease_lost"
    if isinstance(outcome, NextStage):
        with ctx.session() as s:
            job_crud.hand_off_job(session=s, job_id=ctx.job_id, token=ctx.claim_token, queue=outcome.queue,
                                  result=outcome.result)
            job_crud.add_event(session=s, job_id=ctx.job_id, message=outcome.message,
                               data={"next_queue": outcome.queue})
        return JobStatus.queued.value
    status, result, error = outcome
    if error is not None and error.get("code") == "transient_error":
        return _release_after_crash(ctx, error)
    with ctx.session() as s:
        recorded = job_crud.finish_job(session=s, job_id=ctx.job_id, token=ctx.claim_token, status=status,
                                       result=result, error=error)
        if recorded is not None:
            msg = STATUS_MESSAGES.get(recorded, f"Job failed: {(error or {}).get('message')}")
            job_crud.add_event(session=s, job_id=ctx.job_id, message=msg,
                               level="error" if recorded == JobStatus.failed.value else "info",
                               data={"status": recorded})
    return recorded or "lease_lost"


def _release_after_crash(ctx: JobContext, error: dict) -> str:
    def release() -> str:
        with ctx.session() as s:
            job = s.get(Job, ctx.job_id)
            requeued = job_crud.release_for_failure(session=s, job=job, failure=error,
                                                    max_attempts=ctx.settings.max_attempts)
            return JobStatus.queued.value if requeued else JobStatus.failed.value

    return retry_transient(release, deadline_s=ctx.settings.lease_seconds * 2.0, what="re-queue after a crash")


def _claim(session_factory: sessionmaker[Session], settings: Settings, job_id: str, worker_id: str,
           redis_client: object | None) -> JobContext | str:
    """Take the job's claim and build its context, or say (as a status string) why this worker won't run it."""
    with session_scope(session_factory) as s:
        job = s.get(Job, job_id)
        if job is None:
            log.warning("job %s does not exist; dropping the message", job_id)
            return "missing"
        stage = VALIDATING_FILES if job.status == VALIDATING_FILES else RUNNING
        if job.lease_owner is not None and job.lease_expires_at < utcnow():  # redelivered: its process died
            job_crud.release_for_failure(session=s, job=job, max_attempts=settings.max_attempts, failure={
                "code": "worker_lost", "message": f"the process running it on {job.lease_owner} died"})
            return job.status
        claimed = job_crud.claim_job(session=s, job_id=job_id, worker_id=worker_id,
                                     lease_seconds=settings.lease_seconds, pid=os.getpid())
        if claimed is None:
            return job.status
        return JobContext(job_id=job_id, kind=claimed.kind, stage=stage, owner_id=claimed.owner_id,
                          model=claimed.model, params=dict(claimed.params), attempt=claimed.attempt,
                          settings=settings, session_factory=session_factory, claim_token=claimed.claim_token,
                          worker_id=worker_id, queue=claimed.queue, redis_client=redis_client)


def _run_handler(ctx: JobContext, handler: Handler) -> Outcome | None:
    """Call the handler; its outcome as the next stage, or (status, result, error); None if the claim was lost."""
    try:
        result = handler(ctx)
    except job_crud.ClaimLost:
        return None
    except JobStopped:
        return JobStatus.cancelled, None, None  # finish_job reads whether a pause or a cancel was asked
    except JobFailed as exc:
        return JobStatus.failed, None, exc.error
    except TRANSIENT_DB_ERRORS as exc:  # the database went away mid-stage: resume later, spend an attempt
        log.warning("job %s: database error; re-queueing it", ctx.job_id, exc_info=True)
        return JobStatus.failed, None, {"code": "transient_error", "param": None,
                                        "message": f"database unreachable: {type(exc).__name__}"}
    except Exception as exc:  # a bug or a broken input: the job fails with the reason, the worker lives on
        log.exception("job %s crashed", ctx.job_id)
        return JobStatus.failed, None, {"code": "internal_error", "param": None,
                                        "message": f"{type(exc).__name__}: {exc}"}
    if ctx._lost.is_set():
        return None
    if isinstance(result, NextStage):
        return result
    stopped_itself = (result or {}).get("status")
    if ctx._stop.is_set():
        return JobStatus.cancelled, result, None
    if stopped_itself in ("cancelled", "paused"):  # the handler stopped on its own (e.g. a budget cap)
        return JobStatus(stopped_itself), result, None
    return JobStatus.succeeded, result, None
