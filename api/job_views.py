"""Job rows -> each kind's public view (the read model ``api.job_kinds`` declares for it).

Every view takes ``(job, session)``. A waiting job's ``queue_position``, ``estimated_start`` and
``waiting_reason`` are read from its row: the dispatcher writes them on every pass from the same policy
that admits jobs, so what a user sees is the order jobs really start in (and costs a poll nothing).
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from api.job_kinds import object_name
from api.schemas.batches import BatchErrors, BatchRead, BatchRequestCounts, BatchUsage
from api.schemas.common import to_unix
from api.schemas.evals import EvalJobRead, EvalJobReportRead
from api.schemas.fine_tuning import FineTuningJobRead
from api.schemas.generation import GenerationJobRead
from api.schemas.jobs import EventRead, JobRead
from models.crud.queue import PENDING_STATUSES
from models.event_bus import event_payload
from models.job import Job, JobEvent, JobKind, JobStatus

View = Callable[[Job, Session | None], BaseModel]
COMPLETION_WINDOW = timedelta(hours=24)  # a batch's advisory expiry (OpenAI's only window)


def _eta(job: Job) -> int | None:
    iso = (job.progress or {}).get("estimated_finish")
    if job.status != JobStatus.running.value or not iso:
        return None
    return int(datetime.fromisoformat(iso).timestamp())


def _waiting_fields(job: Job) -> dict:
    """Where a job waiting for admission stands, as the dispatcher's last pass wrote it (None otherwise)."""
    if job.status not in PENDING_STATUSES or job.lease_owner is not None:
        return {"queue_position": None, "estimated_start": None, "waiting_reason": None}
    return {"queue_position": job.queue_position, "estimated_start": to_unix(job.estimated_start),
            "waiting_reason": job.waiting_reason}


def _common_fields(job: Job) -> dict:
    return {"id": job.id, "object": object_name(job.kind), "kind": job.kind, "status": job.status,
            "model": job.model, "created_at": to_unix(job.created_at), "started_at": to_unix(job.started_at),
            "finished_at": to_unix(job.finished_at), "error": _error(job), "progress": job.progress or {},
            "estimated_finish": _eta(job), **_waiting_fields(job), "attempt": job.attempt,
            "priority": job.priority, "metadata": job.user_metadata or {}, "result": job.result or None}


def _error(job: Job) -> dict | None:
    """Every field of the error given, so routes that leave unset fields out still send ``param``."""
    return {"param": None, **job.error} if job.error else None


def job_view(job: Job, session: Session | None = None) -> JobRead:
    """The common job object of any kind (``/v1/jobs``, preflight and export jobs)."""
    return JobRead(**_common_fields(job))


def event_view(ev: JobEvent) -> EventRead:
    return EventRead(**{k: v for k, v in event_payload(ev).items() if k != "job_id"})


def _openai_hparams(hp: dict) -> dict:
    epochs = hp.get("num_epochs", 3)
    return {"n_epochs": int(epochs) if float(epochs).is_integer() else epochs, "batch_size": hp.get("batch_size"),
            "learning_rate_multiplier": round(hp.get("learning_rate", 3e-4) / 3e-4, 6), **hp}


def fine_tuning_view(job: Job, session: Session | None = None) -> FineTuningJobRead:
    """OpenAI's FineTuningJob: its hyperparameters under OpenAI's names as well as lorafleet's."""
    p, r = job.params, job.result or {}
    hp = _openai_hparams(p.get("hyperparameters", {}))
    tokens = r.get("trained_tokens") if job.status == JobStatus.succeeded.value else (job.progress or {}).get("tokens")
    return FineTuningJobRead(
        **_common_fields(job), fine_tuned_model=r.get("fine_tuned_model"),
        organization_id=job.owner_id, hyperparameters=hp, training_file=p.get("training_file"),
        validation_file=p.get("validation_file"), result_files=r.get("result_files", []), seed=hp.get("seed"),
        trained_tokens=tokens, integrations=[],
        method={"type": p.get("method", "supervised"), p.get("method", "supervised"): {"hyperparameters": hp}},
        suffix=p.get("suffix"))


def generation_view(job: Job, session: Session | None = None) -> GenerationJobRead:
    cfg, r, progress = job.params.get("config", {}), job.result or {}, job.progress or {}
    return GenerationJobRead(
        **_common_fields(job), method=cfg.get("method"),
        num_instructions=cfg.get("num_instructions"), teacher=cfg.get("teacher"),
        has_teacher_api_key=bool(job.params.get("teacher_api_key_encrypted")), seed_file=job.params.get("seed_file"),
        config=cfg, dataset_id=r.get("dataset_id"), training_file=r.get("training_file"),
        n_kept=r.get("n_kept", progress.get("n_kept")), cost_usd=r.get("cost_usd", progress.get("cost_usd")))


def _eval_fields(job: Job) -> dict:
    p, r = job.params, job.result or {}
    return {**_common_fields(job), "eval_file": p.get("eval_file"), "models": p.get("models"),
            "fine_tuning_job": p.get("fine_tuning_job"), "metrics": p.get("metrics"), "sampling": p.get("sampling"),
            "limit": p.get("limit"), "judge": p.get("judge"), "report_file_id": r.get("report_file_id"),
            "scores": r.get("models")}


def eval_view(job: Job, session: Session | None = None) -> EvalJobRead:
    return EvalJobRead(**_eval_fields(job))


def eval_report_view(job: Job, session: Session, report: dict | None) -> EvalJobReportRead:
    """The eval job with its report; ``report`` left unset (so not sent) when there is none."""
    return EvalJobReportRead(**_eval_fields(job), **({"report": report} if report is not None else {}))


def batch_status(job: Job) -> str:
    """lorafleet's job status -> OpenAI's batch status (see ``api.routes.batches``)."""
    status, phase = job.status, (job.progress or {}).get("phase")
    waiting = (JobStatus.queued.value, JobStatus.validating_files.value, JobStatus.paused.value)
    if status in waiting and job.started_at is None:
        return "cancelling" if job.cancel_requested else "validating"
    if status in (JobStatus.running.value, *waiting):
        if job.cancel_requested:
            return "cancelling"
        return "finalizing" if phase == "finalizing" else "in_progress"
    return {JobStatus.succeeded.value: "completed", JobStatus.failed.value: "failed"}.get(status, "cancelled")


def _cancelling_at(session: Session | None, job: Job) -> int | None:
    """When the cancel was asked for: the event ``request_cancel`` wrote (the job row keeps no timestamp)."""
    if not job.cancel_requested or session is None:
        return None
    said = or_(JobEvent.message.like("Cancellation requested%"), JobEvent.message.like("Job cancelled before%"))
    q = select(JobEvent.created_at).where(JobEvent.job_id == job.id, said).order_by(JobEvent.id).limit(1)
    return to_unix(session.execute(q).scalar_one_or_none())


def _batch_errors(job: Job) -> BatchErrors:
    e = job.error or {}
    return BatchErrors(data=[{"code": e.get("code") or "failed", "message": e.get("message"),
                              "param": e.get("param"), "line": e.get("line")}])


def batch_view(job: Job, session: Session | None = None) -> BatchRead:
    """OpenAI's Batch object (it has no queue position)."""
    p, r, progress = job.params, job.result or {}, job.progress or {}
    status, finished = batch_status(job), to_unix(job.finished_at)
    counts = r.get("request_counts") or progress.get("request_counts") or {"total": p.get("total", 0)}
    return BatchRead(
        id=job.id, endpoint=p["endpoint"], errors=_batch_errors(job) if job.error and status == "failed" else None,
        input_file_id=p["input_file_id"], completion_window=p.get("completion_window", "24h"), status=status,
        output_file_id=r.get("output_file_id"), error_file_id=r.get("error_file_id"),
        created_at=to_unix(job.created_at), in_progress_at=to_unix(job.started_at),
        expires_at=to_unix(job.created_at + COMPLETION_WINDOW), finalizing_at=progress.get("finalizing_at"),
        completed_at=finished if status == "completed" else None,
        failed_at=finished if status == "failed" else None,
        cancelling_at=_cancelling_at(session, job), cancelled_at=finished if status == "cancelled" else None,
        request_counts=BatchRequestCounts(**{k: counts.get(k, 0) for k in ("total", "completed", "failed")}),
        metadata=job.user_metadata or None, model=job.model,
        usage=BatchUsage(**r["usage"]) if r.get("usage") else None)


KIND_VIEWS: dict[JobKind | None, View] = {
    None: job_view, JobKind.preflight: job_view, JobKind.export: job_view, JobKind.fine_tuning: fine_tuning_view,
    JobKind.generation: generation_view, JobKind.eval: eval_view, JobKind.batch: batch_view,
}
