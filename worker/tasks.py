"""Thin Celery tasks: one per job kind, each taking only a job id and delegating to the runner."""
from __future__ import annotations

from celery import shared_task

from models.event_bus import wake_dispatcher
from models.settings import get_settings
from worker.celery_app import TASK_NAMES
from worker.job_context import Handler
from worker.resources import apply_torch_threads, redis_client, session_factory
from worker.runner import run_job


def _run(job_id: str, handler: Handler) -> str:
    settings = get_settings()
    apply_torch_threads(settings)  # one task per child process: this child's threads
    status = run_job(session_factory=session_factory(), settings=settings, job_id=job_id, handler=handler,
                     redis_client=redis_client(), worker_id=settings.worker_id, device_kind=settings.device_kind)
    wake_dispatcher(settings, redis_client())  # a slot just freed
    return status


@shared_task(name=TASK_NAMES["preflight"])
def preflight(job_id: str) -> str:
    from worker.handlers.preflight import run_preflight_job

    return _run(job_id, run_preflight_job)


@shared_task(name=TASK_NAMES["fine_tuning"])
def fine_tuning(job_id: str) -> str:
    from worker.handlers.fine_tuning import run_fine_tuning_job

    return _run(job_id, run_fine_tuning_job)


@shared_task(name=TASK_NAMES["export"])
def export(job_id: str) -> str:
    from worker.handlers.export import run_export_job

    return _run(job_id, run_export_job)


@shared_task(name=TASK_NAMES["generation"])
def generation(job_id: str) -> str:
    from worker.handlers.generation import run_generation_job

    return _run(job_id, run_generation_job)


@shared_task(name=TASK_NAMES["batch"])
def batch(job_id: str) -> str:
    from worker.handlers.batch import run_batch_job

    return _run(job_id, run_batch_job)


@shared_task(name=TASK_NAMES["eval"])
def eval_(job_id: str) -> str:
    from worker.handlers.eval import run_eval_job

    return _run(job_id, run_eval_job)
