"""Request dependencies as ``Annotated`` aliases: settings, DB session, current user, owned objects."""
from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from api.errors import APIError, not_found
from models.crud import jobs as job_crud
from models.crud.files import get_owned_file as get_owned_file_row
from models.crud.users import get_user_by_key
from models.crud.web_sessions import live_web_session
from models.file import File
from models.job import Job
from models.settings import Settings
from models.storage import ArtifactStore
from models.user import User, hash_api_key
from models.web_session import WebSession

SESSION_COOKIE = "lorafleet_session"  # the dashboard's session (HttpOnly): see api.routes.web_session
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_db(request: Request) -> Iterator[Session]:
    session = request.app.state.session_factory()
    try:
        yield session
    finally:
        session.close()


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_db)]


async def get_store(settings: SettingsDep) -> ArtifactStore:
    return ArtifactStore(settings.artifacts_dir)


StoreDep = Annotated[ArtifactStore, Depends(get_store)]


def get_current_user(request: Request, session: SessionDep) -> User:
    return authenticate(request, session)


def authenticate(request: Request, session: Session) -> User:
    """The caller's user from ``Authorization: Bearer <key>`` (401 otherwise); cached per key. Without
    that header, a dashboard session cookie stands for the key it was opened with (``session_user``)."""
    header = request.headers.get("authorization", "")
    if not header and SESSION_COOKIE in request.cookies:
        return session_user(request, session)[1]
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key:
        raise APIError(401, "missing_api_key", "You didn't provide an API key (Authorization: Bearer <key>)")
    cache = request.app.state.auth_cache
    key_hash = hash_api_key(key.strip())
    user = cache.get(key_hash)  # a detached, read-only snapshot of the user row
    if user is None:
        user = get_user_by_key(session=session, key=key.strip())
        if user is not None:
            session.expunge(user)
            cache.put(key_hash, user)
    if user is None or not user.is_active:
        raise APIError(401, "invalid_api_key", "Incorrect or revoked API key provided")
    return user


def session_user(request: Request, session: Session) -> tuple[WebSession, User]:
    """The live dashboard session behind the cookie and its user (401 otherwise). A request that may
    change state (anything but GET/HEAD/OPTIONS) must echo the session's CSRF token in ``X-CSRF-Token``
    (403 otherwise): another site can make a browser send the cookie, never read the token."""
    found = live_web_session(session=session, token=request.cookies[SESSION_COOKIE])
    if found is None:
        raise APIError(401, "invalid_session", "Your dashboard session has expired, was signed out, or its API key "
                       "was revoked; sign in again")
    web_session, user = found
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not secrets.compare_digest(sent, web_session.csrf_token):
            raise APIError(403, "csrf_token_invalid", f"A {request.method} made with the dashboard's session cookie "
                           f"needs the session's CSRF token in the {CSRF_HEADER} header; it was "
                           f"{'wrong' if sent else 'missing'}", CSRF_HEADER)
    session.expunge(user)
    return web_session, user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_admin_user(user: CurrentUser) -> User:
    if not user.is_admin:
        raise APIError(403, "forbidden", "This endpoint needs an admin API key")
    return user


AdminUser = Annotated[User, Depends(get_admin_user)]


def get_owned_file(file_id: str, session: SessionDep, user: CurrentUser) -> File:
    f = get_owned_file_row(session=session, file_id=file_id, owner_id=user.id)
    if f is None:
        raise not_found("file", file_id, "file_id")
    return f


OwnedFile = Annotated[File, Depends(get_owned_file)]


def get_owned_job(job_id: str, session: SessionDep, user: CurrentUser) -> Job:
    return owned_job_or_404(session, job_id, user)


def owned_job_or_404(session: Session, job_id: str, user: User) -> Job:
    job = job_crud.get_owned_job(session=session, job_id=job_id, owner_id=user.id)
    if job is None:
        raise not_found("job", job_id, "job_id")
    return job


OwnedJob = Annotated[Job, Depends(get_owned_job)]
