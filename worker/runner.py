"""Job lifecycle without Celery: claim the lease, heartbeat, run the kind's handler, record the outcome.

``run_job`` is idempotent: a terminal job returns at once, a job whose lease another live worker
holds is left alone (duplicate delivery), and a job whose worker died is claimed again once its
lease has expired -- handlers resume from what the previous attempt left in the job directory.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from contracts.events import Progress
from contracts.job_stages import RUNNING, VALIDATING_FILES, current_stage, next_stage
from models.crud import jobs as job_crud
from models.db import session_scope
from models.event_bus import event_payload, publish
from models.job import Job, JobStatus
from models.settings import Settings

log = logging.getLogger(__name__)


class JobFailed(Exception):
    """A user-facing failure with an OpenAI-style error object."""

    def __init__(self, code: str, message: str, param: str | None = None):
        super().__init__(message)
        self.error = {"code": code, "message": message, "param": param}


@dataclass(frozen=True)
class NextStage:
    """What a handler returns when its stage is done and the job has another one: the job goes back to
    the dispatcher for ``queue``, keeping ``result`` (shown on the job) and saying ``message``. Build it
    from the kind's declared stages with ``NextStage.after(ctx, result)``."""

    queue: str
    message: str
    result: dict | None = None

    @classmethod
    def after(cls, ctx: JobContext, result: dict | None = None) -> NextStage:
        """The job's next stage by ``contracts.job_stages`` (the current stage must not be the last)."""
        following = next_stage(ctx.kind, ctx.stage)
        if following is None:
            raise ValueError(f"{ctx.kind} job stage {ctx.stage!r} is the kind's last stage")
        return cls(following.queue, current_stage(ctx.kind, ctx.stage).done, result)


class JobStopped(Exception):
    """Raised or returned by handlers that stopped cooperatively (cancel or pause)."""


@dataclass
class JobContext:
    """What a handler gets: the job's data, its directories, and callbacks into the lifecycle."""

    job_id: str
    kind: str
    stage: str
    owner_id: str
    model: str | None
    params: dict
    attempt: int
    settings: Settings
    session_factory: sessionmaker[Session]
    redis_client: object | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _lost: threading.Event = field(default_factory=threading.Event)
    _last_progress_write: float = 0.0
    _t0: float = field(default_factory=time.monotonic)

    @property
    def work_dir(self) -> Path:
        path = self.settings.artifacts_dir / "jobs" / self.job_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def should_stop(self) -> bool:
        return self._stop.is_set() or self._lost.is_set()

    def emit(self, message: str, *, level: str = "info", type: str = "message", data: dict | None = None) -> None:
        with session_scope(self.session_factory) as s:
            ev = job_crud.add_event(session=s, job_id=self.job_id, message=message, level=level, type=type, data=data)
            payload = event_payload(ev)
        if self.redis_client is not None:
            try:
                publish(self.redis_client, self.settings.namespace, self.job_id, payload)
            except Exception:  # live push is best effort; the row is the record
                log.warning("could not publish event for %s", self.job_id, exc_info=True)

    def report_progress(self, *, step: int, total: int, tokens: int | None = None,
                        tokens_per_s: float | None = None, force: bool = False, **extra) -> None:
        """Progress on the job row (throttled to ~1 write/s): step/total, percent, ETA, tokens."""
        now = time.monotonic()
        if not force and now - self._last_progress_write < 1.0 and step < total:
            return
        self._last_progress_write = now
        progress = Progress.measure(step=step, total=total, elapsed_s=now - self._t0, tokens=tokens,
                                    tokens_per_s=tokens_per_s, **extra).model_dump()
        with session_scope(self.session_factory) as s:
            job = s.get(Job, self.job_id)
            if job is not None:
                job.progress = progress


Handler = Callable[[JobContext], "dict | NextStage | None"]


class _Heartbeat(threading.Thread):
    """Renews the lease; turns cancel/pause flags into ctx.should_stop(); hard-kills on a stuck cancel."""

    def __init__(self, ctx: JobContext, worker_id: str, cancel_grace_s: float):
        super().__init__(daemon=True, name=f"heartbeat-{ctx.job_id}")
        self.ctx, self.worker_id, self.cancel_grace_s = ctx, worker_id, cancel_grace_s
        self.done = threading.Event()
        self.cancel_seen_at: float | None = None
        self.pause_requested = False

    def run(self) -> None:
        interval = max(0.5, self.ctx.settings.lease_seconds / 3)
        last = time.monotonic()
        while not self.done.wait(interval):
            now = time.monotonic()
            try:
                with session_scope(self.ctx.session_factory) as s:
                    owner, cancel, pause = job_crud.renew_lease(
                        session=s, job_id=self.ctx.job_id, worker_id=self.worker_id,
                        lease_seconds=self.ctx.settings.lease_seconds, add_compute_seconds=now - last)
                last = now
            except Exception:
                log.warning("heartbeat failed for %s", self.ctx.job_id, exc_info=True)
                continue
            if not owner:
                self.ctx._lost.set()
                return
            if cancel or pause:
                self.pause_requested = pause and not cancel
                self.ctx._stop.set()
                self.cancel_seen_at = self.cancel_seen_at or now
                if cancel and now - self.cancel_seen_at > self.cancel_grace_s:
                    self._hard_cancel()

    def _hard_cancel(self) -> None:
        """Fallback when a handler ignores should_stop: record the cancel, then kill our own process."""
        with session_scope(self.ctx.session_factory) as s:
            job_crud.add_event(session=s, job_id=self.ctx.job_id, level="warn",
                               message="Job did not stop within the grace period; its process was killed")
            job_crud.finish_job(session=s, job_id=self.ctx.job_id, worker_id=self.worker_id,
                                status=JobStatus.cancelled)
        os.kill(os.getpid(), signal.SIGKILL)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_job(*, session_factory: sessionmaker[Session], settings: Settings, job_id: str, handler: Handler,
            redis_client: object | None = None, worker_id: str | None = None, cancel_grace_s: float = 120.0) -> str:
    """Run one stage of a job to an outcome; returns the final (or current, if not ours) status."""
    worker_id = worker_id or default_worker_id()
    ctx = _claim(session_factory, settings, job_id, worker_id, redis_client)
    if isinstance(ctx, str):
        return ctx
    ctx.emit(f"Job started on {worker_id} (attempt {ctx.attempt})", data={"attempt": ctx.attempt})
    beat = _Heartbeat(ctx, worker_id, cancel_grace_s)
    beat.start()
    try:
        outcome = _run_handler(ctx, handler, beat)
    finally:
        beat.done.set()
    if outcome is None:
        return "lease_lost"
    if isinstance(outcome, NextStage):
        with session_scope(session_factory) as s:
            job_crud.hand_off_job(session=s, job_id=job_id, worker_id=worker_id, queue=outcome.queue,
                                  result=outcome.result)
        ctx.emit(outcome.message, data={"next_queue": outcome.queue})
        return JobStatus.queued.value
    status, result, error = outcome
    with session_scope(session_factory) as s:
        recorded = job_crud.finish_job(session=s, job_id=job_id, worker_id=worker_id, status=status,
                                       result=result, error=error)
    if recorded:
        msg = {"succeeded": "Job succeeded", "cancelled": "Job cancelled", "paused": "Job paused"}.get(
            status.value, f"Job failed: {(error or {}).get('message')}")
        ctx.emit(msg, level="error" if status == JobStatus.failed else "info", data={"status": status.value})
    return status.value


def _claim(session_factory: sessionmaker[Session], settings: Settings, job_id: str, worker_id: str,
           redis_client: object | None) -> JobContext | str:
    """Take the job's lease and build its context, or say (as a status string) why this worker won't run it."""
    with session_scope(session_factory) as s:
        job = s.get(Job, job_id)
        if job is None:
            log.warning("job %s does not exist; dropping the message", job_id)
            return "missing"
        if job.status not in (JobStatus.running.value, JobStatus.queued.value, JobStatus.validating_files.value):
            return job.status
        stage = VALIDATING_FILES if job.status == VALIDATING_FILES else RUNNING
        if job.attempt >= settings.max_attempts and job.status == JobStatus.queued.value and job.attempt > 0:
            job.status, job.finished_at = JobStatus.failed.value, datetime.now(UTC)
            job.error = {"code": "too_many_attempts", "param": None,
                         "message": f"the job lost its worker {job.attempt} times; giving up"}
            return job.status
        claimed = job_crud.claim_job(session=s, job_id=job_id, worker_id=worker_id,
                                     lease_seconds=settings.lease_seconds, pid=os.getpid())
        if claimed is None:
            return s.get(Job, job_id).status
        return JobContext(job_id=job_id, kind=claimed.kind, stage=stage, owner_id=claimed.owner_id,
                          model=claimed.model, params=dict(claimed.params), attempt=claimed.attempt,
                          settings=settings, session_factory=session_factory, redis_client=redis_client)


def _run_handler(ctx: JobContext, handler: Handler,
                 beat: _Heartbeat) -> NextStage | tuple[JobStatus, dict | None, dict | None] | None:
    """Call the handler; its outcome as the next stage, or (status, result, error); None if the lease was lost."""
    try:
        result = handler(ctx)
    except JobStopped:
        return (JobStatus.paused if beat.pause_requested else JobStatus.cancelled), None, None
    except JobFailed as exc:
        return JobStatus.failed, None, exc.error
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
        return (JobStatus.paused if beat.pause_requested else JobStatus.cancelled), result, None
    if stopped_itself in ("cancelled", "paused"):  # the handler stopped on its own (e.g. a budget cap)
        return JobStatus(stopped_itself), result, None
    return JobStatus.succeeded, result, None
