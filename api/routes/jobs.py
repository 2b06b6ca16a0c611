"""Every job kind's shared surface: retrieve, list, cancel, pause/resume, events (paged and live SSE)."""
from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.deps import CurrentUser, OwnedJob, SessionDep, authenticate, owned_job_or_404
from api.errors import APIError, not_found
from api.queue import notify_submitted
from api.schemas.common import ListRead
from api.schemas.jobs import EventRead, JobRead
from api.views import event_view, job_view
from models.crud import jobs as job_crud
from models.event_bus import event_payload, job_channel
from models.job import TERMINAL_STATUSES, Job, JobStatus

router = APIRouter(prefix="/jobs", tags=["jobs"])


def parse_event_cursor(after: str | None) -> int | None:
    if after is None:
        return None
    raw = after.removeprefix("ev-")
    if not raw.isdigit():
        raise APIError(400, "invalid_value", f"'after' must be an event id like 'ev-12', got {after!r}", "after")
    return int(raw)


def page_events(session, job: Job, after: str | None, limit: int, order: str) -> ListRead[EventRead]:
    rows = job_crud.list_events(session=session, job_id=job.id, after=parse_event_cursor(after), limit=limit + 1,
                                ascending=(order == "asc"))
    data = [event_view(e) for e in rows[:limit]]
    return ListRead(data=data, has_more=len(rows) > limit, first_id=data[0].id if data else None,
                    last_id=data[-1].id if data else None)


def owned_job_of_kind(session, user, job_id: str, kind: str, what: str, param: str) -> Job:
    """The caller's job of one kind, or a 404 that names the kind's id parameter."""
    job = job_crud.get_owned_job(session=session, job_id=job_id, owner_id=user.id, kind=kind)
    if job is None:
        raise not_found(what, job_id, param)
    return job


def page_jobs(session, user, kind: str, after: str | None, limit: int, view) -> tuple[list, bool]:
    """One page of the caller's jobs of a kind, newest first, each through ``view``; and has_more."""
    rows = job_crud.list_jobs(session=session, owner_id=user.id, kind=kind, after=after, limit=limit + 1)
    return [view(j) for j in rows[:limit]], len(rows) > limit


def cancel_job(session, job: Job) -> Job:
    job_crud.request_cancel(session=session, job=job)
    session.commit()
    return job


@router.get("", response_model=ListRead[JobRead])
def list_jobs(session: SessionDep, user: CurrentUser, kind: str | None = None, after: str | None = None,
              limit: int = Query(20, ge=1, le=100)) -> ListRead[JobRead]:
    rows = job_crud.list_jobs(session=session, owner_id=user.id, kind=kind, after=after, limit=limit + 1)
    return ListRead(data=[job_view(j) for j in rows[:limit]], has_more=len(rows) > limit)


@router.get("/{job_id}", response_model=JobRead)
def retrieve_job(job_id: str, request: Request) -> JobRead:
    """The endpoint clients poll. Each sync dependency costs a thread-pool hop, and under load every hop
    waits in line; doing auth and the lookup inline makes a status read one hop instead of five."""
    with request.app.state.session_factory() as session:
        job = owned_job_or_404(session, job_id, authenticate(request, session))
        return job_view(job, session, request.app.state.queue_positions)


@router.post("/{job_id}/cancel", response_model=JobRead)
def cancel(job: OwnedJob, session: SessionDep) -> JobRead:
    return job_view(cancel_job(session, job), session)


@router.post("/{job_id}/pause", response_model=JobRead)
def pause(job: OwnedJob, session: SessionDep) -> JobRead:
    if job.status == JobStatus.running.value:
        job.pause_requested = True
        job_crud.add_event(session=session, job_id=job.id, message="Pause requested; stopping at the next checkpoint")
    elif job.status == JobStatus.queued.value:
        job.status, job.admitted_at = JobStatus.paused.value, None
        job_crud.add_event(session=session, job_id=job.id, message="Job paused while queued")
    else:
        raise APIError(409, "invalid_state", f"a {job.status} job cannot be paused", "job_id")
    session.commit()
    return job_view(job, session)


@router.post("/{job_id}/resume", response_model=JobRead)
def resume(job: OwnedJob, session: SessionDep, request: Request) -> JobRead:
    if job.status != JobStatus.paused.value:
        raise APIError(409, "invalid_state", f"only paused jobs resume; this one is {job.status}", "job_id")
    job.status, job.admitted_at, job.pause_requested = JobStatus.queued.value, None, False
    job_crud.add_event(session=session, job_id=job.id, message="Job resumed; re-queued")
    session.commit()
    notify_submitted(request)
    return job_view(job, session)


@router.get("/{job_id}/events", response_model=ListRead[EventRead])
def list_events(job: OwnedJob, session: SessionDep, after: str | None = None,
                limit: int = Query(20, ge=1, le=1000), order: str = Query("desc", pattern="^(asc|desc)$")):
    return page_events(session, job, after, limit, order)


@router.get("/{job_id}/events/stream")
async def stream_events(job: OwnedJob, request: Request, after: str | None = None):
    """Server-sent events: the stored events after ``after``, then each new one as it happens, until the
    job ends. Redis pub/sub wakes the stream at once; the database is read so nothing is missed."""
    return StreamingResponse(event_stream(request, job.id, parse_event_cursor(after)),
                             media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


async def event_stream(request: Request, job_id: str, cursor: int | None):
    factory, settings = request.app.state.session_factory, request.app.state.settings

    def fetch(after: int | None):
        with factory() as s:
            rows = job_crud.list_events(session=s, job_id=job_id, after=after, limit=500, ascending=True)
            status = s.get(Job, job_id).status
            return [event_payload(e) for e in rows], status

    pubsub = None
    if settings.redis_url:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(settings.redis_url)
        pubsub = client.pubsub()
        await pubsub.subscribe(job_channel(settings.namespace, job_id))
    try:
        while True:
            events, status = await run_in_threadpool(fetch, cursor)
            for ev in events:
                cursor = int(ev["id"][3:])
                yield f"id: {ev['id']}\nevent: {ev['type']}\ndata: {json.dumps(ev)}\n\n"
            if status in TERMINAL_STATUSES and not events:
                yield f"event: end\ndata: {json.dumps({'status': status})}\n\n"
                return
            if await request.is_disconnected():
                return
            if pubsub is not None:
                await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            else:
                await asyncio.sleep(0.5)
    finally:
        if pubsub is not None:
            await pubsub.aclose()
            await client.aclose()
