"""Dashboard sign-ins: an API key exchanged for a browser session (a cookie holding a random token).

Only the token's SHA-256 is stored, with the CSRF token the page sends back on state-changing requests.
A session lives until ``expires_at``, until its user signs out (``revoked_at``), or until the API key it
was opened with is revoked: the key is checked on every request, so revoking it ends its sessions at once.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, TimestampMixin, UTCDateTime, id_column
from models.user import ApiKey


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def hash_session_token(token: str) -> str:
    """256 random bits: a fast hash is enough (nothing to brute-force)."""
    return hashlib.sha256(token.encode()).hexdigest()


class WebSession(TimestampMixin, Base):
    __tablename__ = "web_sessions"

    id: Mapped[str] = id_column("ws-")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    api_key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), index=True,
                                            nullable=False)
    csrf_token: Mapped[str] = mapped_column(String(64), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    api_key: Mapped[ApiKey] = relationship()
