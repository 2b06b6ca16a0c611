"""``/v1/web/session``: the dashboard's sign-in. Browsers cannot put an ``Authorization`` header on an
``EventSource``, so the page exchanges an API key (in a JSON body, never a URL) for a session cookie:
HttpOnly (no script reads it), SameSite=Strict (no other site sends it), Secure behind TLS, expiring with
the session, and dead as soon as its key is revoked. Every state-changing request made with the cookie
must carry the session's CSRF token (``api.deps.session_user``); requests with a Bearer key are unaffected.
"""
from __future__ import annotations

from fastapi import APIRouter, Request, Response

from api.deps import SESSION_COOKIE, SessionDep, SettingsDep, session_user
from api.errors import APIError, error_responses
from api.schemas.common import to_unix
from api.schemas.web_session import WebSessionCreate, WebSessionRead
from api.views import user_view
from models.crud.web_sessions import close_web_session, live_api_key, open_web_session
from models.user import User
from models.web_session import WebSession

router = APIRouter(prefix="/web/session", tags=["web session"])


def behind_tls(request: Request) -> bool:
    """Served over https (uvicorn's proxy headers already turn a trusted ``X-Forwarded-Proto`` into the scheme)."""
    return request.url.scheme == "https"


def session_view(web_session: WebSession, user: User) -> WebSessionRead:
    return WebSessionRead(id=web_session.id, user=user_view(user), csrf_token=web_session.csrf_token,
                          expires_at=to_unix(web_session.expires_at))


@router.post("", response_model=WebSessionRead, responses=error_responses(401))
def sign_in(body: WebSessionCreate, request: Request, response: Response, session: SessionDep,
            settings: SettingsDep) -> WebSessionRead:
    """Exchange an API key for a dashboard session: the cookie is set, the CSRF token returned."""
    key = live_api_key(session=session, key=body.api_key.strip())
    if key is None:
        raise APIError(401, "invalid_api_key", "Incorrect or revoked API key provided", "api_key")
    web_session, token = open_web_session(session=session, api_key=key, ttl_s=settings.web_session_s)
    session.commit()
    response.set_cookie(SESSION_COOKIE, token, max_age=settings.web_session_s, path="/", httponly=True,
                        samesite="strict", secure=behind_tls(request))
    return session_view(web_session, key.user)


@router.get("", response_model=WebSessionRead, responses=error_responses(401))
def read_session(request: Request, session: SessionDep) -> WebSessionRead:
    """The signed-in session (a reloaded page gets its CSRF token back here)."""
    if SESSION_COOKIE not in request.cookies:
        raise APIError(401, "invalid_session", "You are not signed in to the dashboard")
    return session_view(*session_user(request, session))


@router.delete("", response_model=WebSessionRead, responses=error_responses(401, 403))
def sign_out(request: Request, response: Response, session: SessionDep) -> WebSessionRead:
    """End the session (needs its CSRF token like every state change) and clear the cookie."""
    if SESSION_COOKIE not in request.cookies:
        raise APIError(401, "invalid_session", "You are not signed in to the dashboard")
    web_session, user = session_user(request, session)
    close_web_session(session=session, web_session=web_session)
    session.commit()
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=behind_tls(request))
    return session_view(web_session, user)
