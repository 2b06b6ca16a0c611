"""``lorafleet worker``: registers this worker, runs its Celery process on the worker's own queue, and
heartbeats; on SIGTERM it drains (rolling restarts).

Draining: the worker stops taking jobs, asks each of its running jobs to pause at its next checkpoint
(or finished chunk) and go back to the queue, waits up to ``worker_shutdown_grace_s`` for them, then
stops Celery -- killing whatever still runs -- and hands any job it still holds back to the queue
without spending an attempt. Celery's own warm shutdown would wait for a training job to finish.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.crud import jobs as job_crud
from models.db import make_engine, make_sessionmaker, retry_transient, session_scope
from models.job import Job
from models.settings import Settings
from models.worker import Worker, WorkerState
from worker import registry
from worker.dispatcher import worker_queue
from worker.reaper import release_worker_jobs, take_back_admissions

log = logging.getLogger(__name__)
# Celery is started again when it exits on its own, unless it did so more than MAX_CRASHES times in the window.
MAX_CRASHES, CRASH_WINDOW_S = 5, 600


@dataclass(frozen=True)
class WorkerOptions:
    queues: tuple[str, ...] = ("gpu",)   # pools it serves
    gpus: tuple[int, ...] = ()           # CUDA devices it owns; none: the CPU
    concurrency: int = 1                 # jobs at once on a CPU host (one per GPU otherwise)
    memory_gb: float | None = None       # per device; overrides what is detected
    loglevel: str = "INFO"


def celery_command(queue: str, concurrency: int, name: str, loglevel: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "worker.celery_app:app", "worker", "-Q", queue,
            "-c", str(concurrency), "--pool", "prefork", "--max-tasks-per-child", "1", "-l", loglevel,
            "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"{name}@%h"]


def _die_with_parent() -> None:  # the Celery process must not outlive its supervisor (SIGKILL included)
    from billiard.util import set_pdeathsig

    set_pdeathsig(signal.SIGKILL)


class Supervisor:
    def __init__(self, settings: Settings, options: WorkerOptions):
        self.settings, self.options = settings, options
        self.host = registry.default_host(settings)
        self.worker_id = registry.new_worker_id(self.host)
        self.devices = registry.detect_devices(list(options.gpus), options.memory_gb)
        self.slots = len(options.gpus) if options.gpus else options.concurrency
        self.factory: sessionmaker[Session] = make_sessionmaker(make_engine(settings.sqlalchemy_url, pool_size=2))
        self.stop_requested = threading.Event()
        self.child: subprocess.Popen | None = None

    def run(self) -> int:
        retry_transient(self._register, deadline_s=300, what="worker registration")
        log.info("worker %s registered: %s, %d slot(s), queues %s", self.worker_id, self.devices.kind, self.slots,
                 ",".join(self.options.queues))
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop_requested.set())
        self._start_celery()
        interval = min(5.0, max(0.5, self.settings.lease_seconds / 3))
        crashes: list[float] = []
        while not self.stop_requested.wait(interval):
            self._beat(draining=False)
            if self.child.poll() is None:
                continue
            log.error("the Celery process of worker %s exited (%s); starting it again", self.worker_id,
                      self.child.returncode)
            self._release_jobs(f"its worker's Celery process exited ({self.child.returncode})", crashed=True)
            crashes = [t for t in crashes if time.monotonic() - t < CRASH_WINDOW_S] + [time.monotonic()]
            if len(crashes) > MAX_CRASHES:
                log.error("Celery exited %d times in %d s; worker %s gives up", len(crashes), CRASH_WINDOW_S,
                          self.worker_id)
                break
            self._start_celery()
        return self._shut_down()

    def _start_celery(self) -> None:
        env = {**os.environ, "LORAFLEET_WORKER_ID": self.worker_id, "LORAFLEET_DEVICE_KIND": self.devices.kind}
        if self.options.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, self.options.gpus))
        self.child = subprocess.Popen(
            celery_command(worker_queue(self.settings, self.worker_id), self.slots, self.worker_id,
                           self.options.loglevel), env=env, start_new_session=True,
            preexec_fn=_die_with_parent)  # noqa: PLW1509 - the supervisor runs no other thread

    def _register(self) -> None:
        with session_scope(self.factory) as s:
            self._register_in(s)

    def _beat(self, *, draining: bool) -> None:
        try:
            with session_scope(self.factory) as s:
                if registry.heartbeat(s, self.settings, self.worker_id, utcnow(), draining=draining) is None:
                    self._register_in(s)
        except Exception:  # the database is restarting: the next beat tries again
            log.warning("worker heartbeat failed", exc_info=True)

    def _register_in(self, s: Session) -> None:
        registry.register(s, self.settings, worker_id=self.worker_id, host=self.host, devices=self.devices,
                          slots=self.slots, queues=list(self.options.queues), now=utcnow())

    def _held_jobs(self) -> list[str]:
        with session_scope(self.factory) as s:
            return list(s.execute(select(Job.id).where(Job.lease_owner == self.worker_id,
                                                       Job.status.in_(job_crud.ACTIVE_STATUSES))).scalars())

    def _ask_jobs_to_pause(self) -> None:
        with session_scope(self.factory) as s:
            registry.heartbeat(s, self.settings, self.worker_id, utcnow(), draining=True)
            take_back_admissions(s, [self.worker_id], "its worker is shutting down")
            for job in s.execute(select(Job).where(Job.lease_owner == self.worker_id,
                                                   Job.status.in_(job_crud.ACTIVE_STATUSES))).scalars():
                if not job.cancel_requested:
                    job_crud.request_pause(session=s, job=job, reason="drain")

    def _shut_down(self) -> int:
        """Drain within the grace, stop Celery, hand back what is left, mark the worker stopped."""
        deadline = time.monotonic() + self.settings.worker_shutdown_grace_s
        try:
            retry_transient(self._ask_jobs_to_pause, deadline_s=10, what="drain")
            while time.monotonic() < deadline and self._held_jobs() and self.child.poll() is None:
                time.sleep(0.5)
                self._beat(draining=True)
        except Exception:
            log.warning("could not drain worker %s cleanly", self.worker_id, exc_info=True)
        self._stop_celery(still_running=self._held_jobs_or_unknown())
        self._release_jobs("worker shut down", crashed=False)
        with contextlib.suppress(Exception), session_scope(self.factory) as s:
            s.execute(update(Worker).where(Worker.id == self.worker_id)
                      .values(state=WorkerState.stopped, stopped_at=utcnow()))
        return 0 if self.child is None or self.child.returncode in (0, -signal.SIGTERM, -signal.SIGKILL) else 1

    def _release_jobs(self, why: str, *, crashed: bool) -> None:
        """Hand back what this worker holds: a drained job without spending an attempt, one whose process
        died with Celery as a crash (an attempt, its last checkpoint kept)."""
        try:
            with session_scope(self.factory) as s:
                release_worker_jobs(s, self.worker_id, why, crashed=crashed,
                                    max_attempts=self.settings.max_attempts)
        except Exception:  # its leases run out and the dispatcher re-queues them (spending an attempt)
            log.warning("could not hand back the jobs of %s", self.worker_id, exc_info=True)

    def _held_jobs_or_unknown(self) -> bool:
        try:
            return bool(self._held_jobs())
        except Exception:  # noqa: BLE001 - the database is away: assume a job still runs
            return True

    def _stop_celery(self, *, still_running: bool) -> None:
        """Idle: a warm shutdown, which is immediate. A job still running past the grace: kill at once
        (a warm shutdown would wait for it); it resumes from its last checkpoint elsewhere."""
        if self.child is None or self.child.poll() is not None:
            return
        os.killpg(self.child.pid, signal.SIGKILL if still_running else signal.SIGTERM)
        try:
            self.child.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(self.child.pid, signal.SIGKILL)
            self.child.wait(10)


def run_worker(settings: Settings, options: WorkerOptions) -> int:
    return Supervisor(settings, options).run()
