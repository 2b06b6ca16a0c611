"""Users and API keys."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.user import ApiKey, User, generate_api_key, hash_api_key


def create_user(*, session: Session, name: str, is_admin: bool = False) -> tuple[User, str]:
    """Create a user with a first API key; returns (user, plaintext key shown once)."""
    user = User(name=name, is_admin=is_admin)
    session.add(user)
    session.flush()
    key = create_api_key(session=session, user=user, name="default")[1]
    return user, key


def create_api_key(*, session: Session, user: User, name: str | None = None) -> tuple[ApiKey, str]:
    plaintext = generate_api_key()
    row = ApiKey(user_id=user.id, key_hash=hash_api_key(plaintext), key_prefix=plaintext[:10], name=name)
    session.add(row)
    session.flush()
    return row, plaintext


def get_user_by_key(*, session: Session, key: str) -> User | None:
    row = session.execute(
        select(ApiKey).where(ApiKey.key_hash == hash_api_key(key), ApiKey.revoked_at.is_(None))
    ).scalar_one_or_none()
    if row is None or not row.user.is_active:
        return None
    return row.user


def revoke_api_key(*, session: Session, key: ApiKey) -> None:
    key.revoked_at = utcnow()


def get_user_by_name(*, session: Session, name: str) -> User | None:
    return session.execute(select(User).where(User.name == name)).scalar_one_or_none()
