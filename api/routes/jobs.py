"""``/v1/jobs``: every job of the caller, whatever its kind: the shared routes (``job_lifecycle``), a list
that filters by kind, and the live event stream (server-sent events)."""
from __future__ import annotations

import asyncio
import json

from fastapi import Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.deps import CurrentUser, SessionDep
from api.job_kinds import ANY_JOB, JOB_KINDS
from api.routes.job_lifecycle import (
    EVENT_CURSOR,
    JOB_CURSOR,
    kind_router,
    owned_job_param,
    page_jobs,
    parse_event_cursor,
)
from api.schemas.common import ListRead
from api.schemas.jobs import JobRead
from models.crud import jobs as job_crud
from models.event_bus import event_payload, job_channel
from models.job import TERMINAL_STATUSES, Job

router = kind_router(ANY_JOB)
OwnedJob = owned_job_param(ANY_JOB)
SSE_DESCRIPTION = ("Server-sent events: each event as `id: ev-N`, `event: <type>`, `data: <event JSON>`; "
                   "a final `event: end` with the job's status once it has ended.")


@router.get("", response_model=ListRead[JobRead])
def list_jobs(session: SessionDep, user: CurrentUser, request: Request,
              kind: str | None = Query(None, description=f"only jobs of this kind: {', '.join(JOB_KINDS)}"),
              after: str | None = Query(None, description=JOB_CURSOR),
              limit: int = Query(20, ge=1, le=100)):
    return page_jobs(session, user, ANY_JOB, kind, after, limit, request)


@router.get("/{job_id}/events/stream", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                             "description": SSE_DESCRIPTION}})
async def stream_events(request: Request, job: OwnedJob,
                        after: str | None = Query(None, description=EVENT_CURSOR)):
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
