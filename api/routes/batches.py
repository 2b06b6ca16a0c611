"""``/v1/batches`` in OpenAI's shape (the official SDK drives it).

Status mapping (lorafleet job -> OpenAI batch): queued / validating_files -> ``validating`` (waiting for a
worker); running -> ``in_progress``, ``finalizing`` while the output files are written, ``cancelling``
once a cancel is requested; succeeded -> ``completed``; failed -> ``failed``; cancelled -> ``cancelled``.
``expired`` never happens: ``completion_window`` is advisory.

At submit every line's model is looked up for the caller (base model, own adapter, own checkpoint).
Unknown models do not fail the batch: their lines become error lines when it runs, as do lines whose
``url`` differs from the batch's ``endpoint`` or whose model sits on another base model.
"""
from __future__ import annotations

from collections import Counter
from datetime import timedelta

from fastapi import APIRouter, Query, Request
from sqlalchemy import or_, select

from api.deps import CurrentUser, SessionDep, SettingsDep, StoreDep
from api.errors import APIError
from api.job_inputs import require_file, resolve_model_ref
from api.queue import notify_submitted
from api.routes.jobs import cancel_job, owned_job_of_kind, page_jobs
from api.schemas.batches import (
    BatchCreate,
    BatchErrors,
    BatchesRead,
    BatchRead,
    BatchRequestCounts,
    BatchUsage,
)
from api.schemas.common import to_unix
from contracts.records import BatchRequest, parse_batch_file
from models.crud import jobs as job_crud
from models.job import Job, JobEvent, JobKind, JobStatus

router = APIRouter(prefix="/batches", tags=["batches"])
MAX_REQUESTS = 50_000  # OpenAI's limit per batch
COMPLETION_WINDOW = timedelta(hours=24)


def batch_status(job: Job) -> str:
    status, phase = job.status, (job.progress or {}).get("phase")
    if status in (JobStatus.queued.value, JobStatus.validating_files.value, JobStatus.paused.value) \
            and job.started_at is None:
        return "cancelling" if job.cancel_requested else "validating"
    if status in (JobStatus.running.value, JobStatus.queued.value, JobStatus.validating_files.value,
                  JobStatus.paused.value):
        if job.cancel_requested:
            return "cancelling"
        return "finalizing" if phase == "finalizing" else "in_progress"
    return {JobStatus.succeeded.value: "completed", JobStatus.failed.value: "failed"}.get(status, "cancelled")


def _cancelling_at(session, job: Job) -> int | None:
    """When the cancel was asked for: the event ``request_cancel`` wrote (the job row keeps no timestamp)."""
    if not job.cancel_requested or session is None:
        return None
    said = or_(JobEvent.message.like("Cancellation requested%"), JobEvent.message.like("Job cancelled before%"))
    q = select(JobEvent.created_at).where(JobEvent.job_id == job.id, said).order_by(JobEvent.id).limit(1)
    return to_unix(session.execute(q).scalar_one_or_none())


def batch_view(job: Job, session=None) -> BatchRead:
    p, r, progress = job.params, job.result or {}, job.progress or {}
    status = batch_status(job)
    finished = to_unix(job.finished_at)
    counts = r.get("request_counts") or progress.get("request_counts") or {"total": p.get("total", 0)}
    errors = None
    if job.error and status == "failed":
        errors = BatchErrors(data=[{"code": job.error.get("code") or "failed", "message": job.error.get("message"),
                                    "param": job.error.get("param"), "line": job.error.get("line")}])
    return BatchRead(
        id=job.id, endpoint=p["endpoint"], errors=errors, input_file_id=p["input_file_id"],
        completion_window=p.get("completion_window", "24h"), status=status,
        output_file_id=r.get("output_file_id"), error_file_id=r.get("error_file_id"),
        created_at=to_unix(job.created_at), in_progress_at=to_unix(job.started_at),
        expires_at=to_unix(job.created_at + COMPLETION_WINDOW), finalizing_at=progress.get("finalizing_at"),
        completed_at=finished if status == "completed" else None,
        failed_at=finished if status == "failed" else None,
        cancelling_at=_cancelling_at(session, job), cancelled_at=finished if status == "cancelled" else None,
        request_counts=BatchRequestCounts(**{k: counts.get(k, 0) for k in ("total", "completed", "failed")}),
        metadata=job.user_metadata or None, model=job.model,
        usage=BatchUsage(**r["usage"]) if r.get("usage") else None,
    )


def plan_models(session, user, requests: list[BatchRequest], endpoint: str) -> dict:
    """Look every distinct model up for ``user``: which base model runs the batch, which names are unknown."""
    bases: dict[str, str | None] = {}
    for name in {r.body["model"] for r in requests}:
        try:
            bases[name] = resolve_model_ref(session, user, name)["base_model"]
        except APIError:
            bases[name] = None
    runnable = [bases[r.body["model"]] for r in requests if r.url == endpoint and bases[r.body["model"]]]
    base = Counter(runnable).most_common(1)[0][0] if runnable else None
    known = sorted(n for n, b in bases.items() if b is not None)
    return {"base_model": base, "models": known, "unknown_models": sorted(n for n, b in bases.items() if b is None),
            "runnable_lines": sum(1 for b in runnable if b == base)}


def _get(session, user, batch_id: str) -> Job:
    return owned_job_of_kind(session, user, batch_id, JobKind.batch.value, "batch", "batch_id")


@router.post("", response_model=BatchRead)
def create_batch(body: BatchCreate, session: SessionDep, user: CurrentUser, settings: SettingsDep,
                 store: StoreDep, request: Request) -> BatchRead:
    f = require_file(session, user, body.input_file_id, "input_file_id", ("batch",))
    parsed = parse_batch_file(store.path(f.storage_path).read_bytes(), settings.max_line_bytes)
    if parsed.errors:  # uploads are validated, so this is a file written before a validator change
        raise APIError(400, "invalid_file", f"Invalid batch file: line {parsed.errors[0].line}: "
                       f"{parsed.errors[0].message}", "input_file_id", lines=[e.as_dict() for e in parsed.errors])
    if len(parsed.records) > MAX_REQUESTS:
        raise APIError(400, "too_many_requests_in_file", f"a batch holds at most {MAX_REQUESTS} requests; "
                       f"this file has {len(parsed.records)}", "input_file_id")
    plan = plan_models(session, user, parsed.records, body.endpoint)
    models = plan["models"]
    params = {"input_file_id": f.id, "endpoint": body.endpoint, "completion_window": body.completion_window,
              "precision": body.precision, "batch_size": body.batch_size, "total": len(parsed.records), **plan}
    job = job_crud.create_job(session=session, owner_id=user.id, kind=JobKind.batch, params=params,
                              model=models[0] if len(models) == 1 else plan["base_model"],
                              status=JobStatus.queued, queue="gpu", user_metadata=body.metadata)
    if plan["unknown_models"]:
        job_crud.add_event(session=session, job_id=job.id, level="warn",
                           message=f"Unknown models {plan['unknown_models']}: their lines will be error lines",
                           data={"unknown_models": plan["unknown_models"]})
    session.commit()
    notify_submitted(request)
    return batch_view(job, session)


@router.get("", response_model=BatchesRead)
def list_batches(session: SessionDep, user: CurrentUser, after: str | None = None,
                 limit: int = Query(20, ge=1, le=100)) -> BatchesRead:
    data, has_more = page_jobs(session, user, JobKind.batch.value, after, limit, lambda j: batch_view(j, session))
    return BatchesRead(data=data, has_more=has_more, first_id=data[0].id if data else None,
                       last_id=data[-1].id if data else None)


@router.get("/{batch_id}", response_model=BatchRead)
def retrieve_batch(batch_id: str, session: SessionDep, user: CurrentUser) -> BatchRead:
    return batch_view(_get(session, user, batch_id), session)


@router.post("/{batch_id}/cancel", response_model=BatchRead)
def cancel_batch(batch_id: str, session: SessionDep, user: CurrentUser) -> BatchRead:
    return batch_view(cancel_job(session, _get(session, user, batch_id)), session)
