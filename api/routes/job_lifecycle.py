"""The routes every job kind shares, built from its declaration (``api.job_kinds.JobKindSpec``):
list, retrieve, cancel, pause, resume, events and priority, with the same paging, state rules and errors.

A job is reachable by its owner and by any admin (admins run the pool: they pause, resume, cancel and
re-prioritise anyone's job); to everyone else it does not exist (404). Lists show the caller's own jobs.

A kind's 404 and 409 name its id parameter (``fine_tuning_job_id``, ``batch_id``...). Retrieve is the
endpoint clients poll: it authenticates inline, so a status read is one thread-pool hop, not five
(each sync dependency costs a hop, and under load every hop waits in line).

No ``from __future__ import annotations`` here: the routes are built in closures, and FastAPI reads
their parameter annotations, which must be objects (a string could not see the closure's ``spec``).
"""
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy.orm import Session

from api.deps import CurrentUser, SessionDep, authenticate
from api.errors import APIError, not_found
from api.job_kinds import JobKindSpec
from api.job_views import KIND_VIEWS, event_view
from api.queue import notify_submitted
from api.schemas.common import ListRead
from api.schemas.jobs import EventRead, JobPriorityUpdate
from contracts.events import EVENT_ID_PREFIX
from models.crud import jobs as job_crud
from models.job import TERMINAL_STATUSES, Job, JobStatus
from models.user import User

EVENT_CURSOR = "an event id from a previous page ('ev-12'): events older than it (order=desc) or newer (asc)"
MAX_EVENT_ID = 2**31 - 1  # job_events.id is a 32-bit integer: a larger cursor names no event
JOB_CURSOR = "a job id from a previous page: the jobs created before it"


def owned_job(session: Session, user: User, spec: JobKindSpec, job_id: str) -> Job:
    """The caller's job of the spec's kind (any user's, for an admin), or a 404 naming the kind's id
    parameter (also for an id no row can have: Postgres text holds no NUL)."""
    job = None if "\x00" in job_id else job_crud.get_owned_job(
        session=session, job_id=job_id, owner_id=None if user.is_admin else user.id, kind=spec.kind_value)
    if job is None:
        raise not_found(spec.noun, job_id, spec.id_param)
    return job


def owned_job_dependency(spec: JobKindSpec) -> Callable[..., Job]:
    """A dependency resolving the URL's ``{spec.path_param}`` to the caller's job of that kind."""

    def dependency(session: SessionDep, user: CurrentUser, job_id: str = Path(alias=spec.path_param)) -> Job:
        return owned_job(session, user, spec, job_id)

    return dependency


def owned_job_param(spec: JobKindSpec) -> Any:
    """The type of a route parameter that is the caller's job of ``spec``'s kind (from the URL's id)."""
    return Annotated[Job, Depends(owned_job_dependency(spec))]


def parse_event_cursor(after: str | None) -> int | None:
    if after is None:
        return None
    raw = after.removeprefix(EVENT_ID_PREFIX)
    if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_EVENT_ID:
        raise APIError(400, "invalid_value", f"'after' must be an event id like 'ev-12', got {after!r}", "after")
    return int(raw)


def page_events(session: Session, job: Job, after: str | None, limit: int, order: str) -> ListRead[EventRead]:
    rows = job_crud.list_events(session=session, job_id=job.id, after=parse_event_cursor(after), limit=limit + 1,
                                ascending=(order == "asc"))
    return list_page([event_view(e) for e in rows[:limit]], len(rows) > limit)


def list_page(data: list, has_more: bool) -> ListRead:
    return ListRead(data=data, has_more=has_more, first_id=data[0].id if data else None,
                    last_id=data[-1].id if data else None)


def page_jobs(session: Session, user: User, spec: JobKindSpec, kind: str | None, after: str | None, limit: int,
              request: Request) -> ListRead:
    """One page of the caller's jobs (of ``kind``; None: any), newest first, in the spec's view."""
    rows = job_crud.list_jobs(session=session, owner_id=user.id, kind=kind, after=after, limit=limit + 1)
    view = KIND_VIEWS[spec.kind]
    return list_page([view(j, session) for j in rows[:limit]], len(rows) > limit)


def cancel_job(session: Session, job: Job) -> Job:
    job_crud.request_cancel(session=session, job=job)
    session.commit()
    return job


def pause_job(session: Session, job: Job, param: str) -> Job:
    """Running: stop at the next checkpoint and stay paused. Waiting: leave the line until resumed. Else 409."""
    try:
        job_crud.request_pause(session=session, job=job, reason="user")
    except job_crud.InvalidTransition as exc:
        raise APIError(409, "invalid_state", str(exc), param) from None
    session.commit()
    return job


def require_paused(job: Job, param: str) -> None:
    if job.status != JobStatus.paused.value:
        raise APIError(409, "invalid_state", f"only paused jobs resume; this one is {job.status}", param)


def resume_job(session: Session, job: Job, request: Request, param: str) -> Job:
    """A paused job goes back in line (and the dispatcher is woken); anything else is a 409."""
    require_paused(job, param)
    job_crud.resume_paused(session=session, job=job)
    session.commit()
    notify_submitted(request)
    return job


def set_priority(session: Session, job: Job, request: Request, param: str, priority: int) -> Job:
    """A new priority among the owner's jobs: a waiting job is re-ordered at the next admission pass."""
    if job.status in TERMINAL_STATUSES:
        raise APIError(409, "invalid_state", f"a {job.status} job has no priority to change", param)
    job.priority = priority
    job_crud.add_event(session=session, job_id=job.id, message=f"Priority set to {priority}",
                       data={"priority": priority})
    session.commit()
    notify_submitted(request)
    return job


def kind_router(spec: JobKindSpec) -> APIRouter:
    """An ``APIRouter`` under ``spec.prefix`` with the shared routes ``spec.operations`` names."""
    router = APIRouter(prefix=spec.prefix or "", tags=[spec.tag] if spec.tag else None)
    for operation, add_route in ROUTE_BUILDERS.items():
        if operation in spec.operations:
            add_route(router, spec)
    return router


def _name(verb: str, spec: JobKindSpec) -> str:
    return f"{verb}_{spec.noun.replace('-', '_').replace(' ', '_')}"


def _add_list(router: APIRouter, spec: JobKindSpec) -> None:
    def list_jobs(session: SessionDep, user: CurrentUser, request: Request,
                  after: str | None = Query(None, description=JOB_CURSOR),
                  limit: int = Query(20, ge=1, le=100)):
        return page_jobs(session, user, spec, spec.kind_value, after, limit, request)

    router.add_api_route("", list_jobs, methods=["GET"], response_model=ListRead[spec.read],
                         name="list_" + (spec.prefix or "").strip("/").replace("/", "_"))


def _add_retrieve(router: APIRouter, spec: JobKindSpec) -> None:
    view = KIND_VIEWS[spec.kind]

    async def retrieve_job(request: Request, job_id: str = Path(alias=spec.path_param)) -> Response:
        """The endpoint clients poll, run on the event loop itself: no thread hop and no dependency
        (each costs a wait in line under load). Safe because nothing is awaited while the session is
        open: the loop holds at most one connection, checked out and back in within ~1 ms (two indexed
        reads; the user comes from the auth cache, the queue position from its snapshot). The view,
        already typed as ``spec.read``, is serialised once (FastAPI would validate it again)."""
        with request.app.state.session_factory() as session:
            job = owned_job(session, authenticate(request, session), spec, job_id)
            body = view(job, session)
        return Response(body.model_dump_json(), media_type="application/json")

    router.add_api_route(f"/{{{spec.path_param}}}", retrieve_job, methods=["GET"], response_model=spec.read,
                         name=_name("retrieve", spec))


# (session, job, request, the kind's id param for a 409) -> the job after the action
Action = Callable[[Session, Job, Request, str], Job]
RouteBuilder = Callable[[APIRouter, JobKindSpec], None]


def _add_action(verb: str, act: Action) -> RouteBuilder:
    """Builds ``POST /{id}/{verb}``: the caller's job, ``act`` on it, its view back."""

    def add(router: APIRouter, spec: JobKindSpec) -> None:
        view, owned = KIND_VIEWS[spec.kind], owned_job_param(spec)

        def action(request: Request, session: SessionDep, job: owned):
            return view(act(session, job, request, spec.id_param), session)

        router.add_api_route(f"/{{{spec.path_param}}}/{verb}", action, methods=["POST"], response_model=spec.read,
                             name=_name(verb, spec))

    return add


def _add_events(router: APIRouter, spec: JobKindSpec) -> None:
    owned = owned_job_param(spec)

    def list_events(session: SessionDep, job: owned,
                    after: str | None = Query(None, description=EVENT_CURSOR),
                    limit: int = Query(20, ge=1, le=1000), order: str = Query("desc", pattern="^(asc|desc)$")):
        return page_events(session, job, after, limit, order)

    router.add_api_route(f"/{{{spec.path_param}}}/events", list_events, methods=["GET"],
                         response_model=ListRead[EventRead], name=_name("list", spec) + "_events")


def _add_priority(router: APIRouter, spec: JobKindSpec) -> None:
    view, owned = KIND_VIEWS[spec.kind], owned_job_param(spec)

    def change_priority(request: Request, session: SessionDep, job: owned, body: JobPriorityUpdate):
        """Re-order one of the owner's waiting jobs (owner or admin); other users' jobs keep their fair share."""
        return view(set_priority(session, job, request, spec.id_param, body.priority), session)

    router.add_api_route(f"/{{{spec.path_param}}}/priority", change_priority, methods=["POST"],
                         response_model=spec.read, name=_name("prioritise", spec))


ROUTE_BUILDERS: dict[str, RouteBuilder] = {  # in the order the routes are mounted
    "list": _add_list,
    "retrieve": _add_retrieve,
    "cancel": _add_action("cancel", lambda session, job, request, param: cancel_job(session, job)),
    "pause": _add_action("pause", lambda session, job, request, param: pause_job(session, job, param)),
    "resume": _add_action("resume", resume_job),
    "events": _add_events,
    "priority": _add_priority,
}
