"""Users, their API keys (stored as SHA-256 hashes) and per-user quotas."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, TimestampMixin, UTCDateTime, id_column

API_KEY_PREFIX = "lf-"


def generate_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """Keys carry 256 bits of entropy, so a fast hash is the right tool (no brute force possible)."""
    return hashlib.sha256(key.encode()).hexdigest()


class User(TimestampMixin, Base):
    __tablename__ = "users"

    id: Mapped[str] = id_column("user-")
    name: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    # Fair-share weight and caps (None = the server default).
    share_weight: Mapped[float] = mapped_column(Float, default=1.0, nullable=False)
    max_running_jobs: Mapped[int | None] = mapped_column(Integer)
    # Caps per UTC day: GPU-hours of running jobs, US dollars paid to teachers (None = no cap).
    gpu_hours_per_day: Mapped[float | None] = mapped_column(Float)
    teacher_usd_per_day: Mapped[float | None] = mapped_column(Float)

    keys: Mapped[list[ApiKey]] = relationship(back_populates="user", cascade="all, delete-orphan")


class ApiKey(TimestampMixin, Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = id_column("key-")
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    # First characters, so a user can tell keys apart without the secret.
    key_prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    name: Mapped[str | None] = mapped_column(String(128))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship(back_populates="keys")
