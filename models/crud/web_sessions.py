"""Dashboard sessions: open one for an API key, find the live one behind a cookie, close it."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.user import ApiKey, User, hash_api_key
from models.web_session import WebSession, hash_session_token, new_session_token


def live_api_key(*, session: Session, key: str) -> ApiKey | None:
    """The unrevoked key row of an active user for a plaintext key, or None."""
    row = session.execute(select(ApiKey).where(ApiKey.key_hash == hash_api_key(key), ApiKey.revoked_at.is_(None))
                          ).scalar_one_or_none()
    return row if row is not None and row.user.is_active else None


def open_web_session(*, session: Session, api_key: ApiKey, ttl_s: int) -> tuple[WebSession, str]:
    """A new session for ``api_key``; returns (row, the cookie's token, shown once)."""
    token = new_session_token()
    row = WebSession(token_hash=hash_session_token(token), api_key_id=api_key.id, csrf_token=new_session_token(),
                     expires_at=utcnow() + timedelta(seconds=ttl_s))
    session.add(row)
    session.flush()
    return row, token


def live_web_session(*, session: Session, token: str) -> tuple[WebSession, User] | None:
    """The session behind a cookie's token and its user, while the session is unexpired and not signed
    out, its API key unrevoked and its user active; else None."""
    q = (select(WebSession, User).join(ApiKey, WebSession.api_key_id == ApiKey.id).join(User, ApiKey.user_id == User.id)
         .where(WebSession.token_hash == hash_session_token(token), WebSession.revoked_at.is_(None),
                WebSession.expires_at > utcnow(), ApiKey.revoked_at.is_(None), User.is_active.is_(True)))
    found = session.execute(q).first()
    return (found[0], found[1]) if found is not None else None


def close_web_session(*, session: Session, web_session: WebSession) -> None:
    web_session.revoked_at = utcnow()
