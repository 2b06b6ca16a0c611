"""What a handler works with: its ``JobContext`` (the job's data, directories and fenced writes) and the
outcomes it can signal (``NextStage``, ``JobFailed``, ``JobStopped``). The lifecycle around it is
``worker.runner``."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from contracts.events import Progress
from contracts.job_stages import current_stage, next_stage
from models.base import utcnow
from models.crud import jobs as job_crud
from models.crud.usage import add_usage, record_job_totals
from models.db import retry_transient, unit_of_work
from models.event_bus import event_payload, publish
from models.job import Job
from models.settings import Settings

log = logging.getLogger(__name__)
# What a kind's progress ``tokens`` count, as a usage-ledger column (generation meters its teacher itself).
TOKEN_USAGE = {"fine_tuning": "tokens_trained", "batch": "tokens_generated", "eval": "tokens_generated"}


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
    attempt: int  # attempts lost so far to crashes or dead workers
    settings: Settings
    session_factory: sessionmaker[Session]
    claim_token: str = ""
    worker_id: str = ""
    queue: str = "gpu"
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

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work for this job: commits only while this worker's claim holds (the fencing token
        is checked first, the row stays locked to the end); waits out a database restart before starting.
        Raises ``ClaimLost`` (and stops the job) when the claim was taken over."""
        def open_fenced() -> Session:
            session = self.session_factory()
            try:
                job_crud.assert_claim(session=session, job_id=self.job_id, token=self.claim_token)
            except BaseException:
                session.rollback()
                session.close()
                raise
            return session

        try:
            session = retry_transient(open_fenced, deadline_s=self.settings.lease_seconds * 2.0,
                                      what=f"write for job {self.job_id}")
        except job_crud.ClaimLost:
            self._lost.set()
            raise
        with unit_of_work(session):
            yield session

    def record_usage(self, *, tokens_trained: int = 0, tokens_generated: int = 0, teacher_tokens: int = 0,
                     teacher_cost_usd: float = 0.0) -> None:
        """Add to the usage ledger what this job just consumed (tokens and teacher spend; the heartbeat
        meters compute seconds)."""
        with self.session() as s:
            add_usage(session=s, owner_id=self.owner_id, job_id=self.job_id, kind=self.kind, now=utcnow(),
                      tokens_trained=tokens_trained, tokens_generated=tokens_generated,
                      teacher_tokens=teacher_tokens, teacher_cost_usd=teacher_cost_usd)

    def emit(self, message: str, *, level: str = "info", type: str = "message", data: dict | None = None) -> None:
        with self.session() as s:
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
        with self.session() as s:
            s.get(Job, self.job_id).progress = progress
            if tokens is not None and self.kind in TOKEN_USAGE:  # into the usage ledger, what is new since last time
                record_job_totals(session=s, owner_id=self.owner_id, job_id=self.job_id, kind=self.kind,
                                  now=utcnow(), **{TOKEN_USAGE[self.kind]: int(tokens)})


Handler = Callable[[JobContext], "dict | NextStage | None"]
