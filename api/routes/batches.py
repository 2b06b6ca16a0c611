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

from fastapi import Request

from api.deps import CurrentUser, SessionDep, SettingsDep, StoreDep
from api.errors import APIError
from api.job_inputs import require_file, resolve_model_ref
from api.job_kinds import BATCH
from api.job_views import batch_status, batch_view
from api.queue import notify_submitted
from api.routes.job_lifecycle import kind_router
from api.schemas.batches import BatchCreate, BatchRead
from contracts.batch_records import BatchRequest, parse_batch_file
from models.crud import jobs as job_crud
from models.job import JobKind

__all__ = ["batch_status", "router"]  # batch_status: the status mapping above (lives with the batch view)

router = kind_router(BATCH)
MAX_REQUESTS = 50_000  # OpenAI's limit per batch


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
                              user_metadata=body.metadata, priority=body.priority)
    if plan["unknown_models"]:
        job_crud.add_event(session=session, job_id=job.id, level="warn",
                           message=f"Unknown models {plan['unknown_models']}: their lines will be error lines",
                           data={"unknown_models": plan["unknown_models"]})
    session.commit()
    notify_submitted(request)
    return batch_view(job, session)
