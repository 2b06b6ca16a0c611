"""Users and API keys. Creating users and setting their weight, caps and standing is for admins; anyone may
manage their own keys."""
from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from api.deps import AdminUser, CurrentUser, SessionDep
from api.errors import APIError, error_responses, not_found
from api.schemas.common import ListRead
from api.schemas.users import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    UserCreate,
    UserCreated,
    UserRead,
    UserUpdate,
)
from api.views import key_view, user_view
from models.crud.users import create_api_key, create_user, revoke_api_key
from models.user import ApiKey, User

router = APIRouter(tags=["users"])
POOL_FIELDS = ("share_weight", "max_running_jobs", "gpu_hours_per_day", "teacher_usd_per_day")


@router.post("/users", response_model=UserCreated, status_code=201, responses=error_responses(403, 409))
def create_user_route(body: UserCreate, session: SessionDep, _: AdminUser) -> UserCreated:
    try:
        user, key = create_user(session=session, name=body.name, is_admin=body.is_admin)
        for name in POOL_FIELDS:
            setattr(user, name, getattr(body, name))
        session.commit()
    except IntegrityError:
        session.rollback()
        raise APIError(409, "name_taken", f"a user named {body.name!r} already exists", "name") from None
    return UserCreated(**user_view(user).model_dump(), api_key=key)


@router.get("/users", response_model=ListRead[UserRead], responses=error_responses(403))
def list_users(session: SessionDep, _: AdminUser) -> ListRead[UserRead]:
    users = session.execute(select(User).order_by(User.created_at)).scalars()
    return ListRead(data=[user_view(u) for u in users])


@router.patch("/users/{user_id}", response_model=UserRead, responses=error_responses(403, 404))
def update_user(user_id: str, body: UserUpdate, session: SessionDep, _: AdminUser, request: Request) -> UserRead:
    """Set a user's fair-share weight, caps (null clears one) or standing; the dispatcher's next pass uses them."""
    target = session.get(User, user_id) if "\x00" not in user_id else None
    if target is None:
        raise not_found("user", user_id, "user_id")
    for name, value in body.model_dump(exclude_unset=True).items():  # null only where the type allows it
        setattr(target, name, value)
    session.commit()
    request.app.state.auth_cache.drop_user(target.id)  # a deactivated user's cached keys stop at once
    return user_view(target)


@router.get("/me", response_model=UserRead)
def read_me(user: CurrentUser) -> UserRead:
    return user_view(user)


def _target_user(session, caller: User, user_id: str) -> User:
    target = session.get(User, user_id)
    if target is None or (target.id != caller.id and not caller.is_admin):
        raise not_found("user", user_id, "user_id")
    return target


@router.post("/users/{user_id}/keys", response_model=ApiKeyCreated, status_code=201)
def create_key(user_id: str, session: SessionDep, caller: CurrentUser, body: ApiKeyCreate | None = None):
    target = _target_user(session, caller, user_id)
    row, key = create_api_key(session=session, user=target, name=body.name if body else None)
    session.commit()
    return ApiKeyCreated(**key_view(row).model_dump(), api_key=key)


@router.get("/users/{user_id}/keys", response_model=ListRead[ApiKeyRead])
def list_keys(user_id: str, session: SessionDep, caller: CurrentUser):
    target = _target_user(session, caller, user_id)
    return ListRead(data=[key_view(k) for k in target.keys])


@router.delete("/users/{user_id}/keys/{key_id}", response_model=ApiKeyRead)
def revoke_key(user_id: str, key_id: str, session: SessionDep, caller: CurrentUser, request: Request):
    target = _target_user(session, caller, user_id)
    key = session.get(ApiKey, key_id)
    if key is None or key.user_id != target.id:
        raise not_found("api key", key_id, "key_id")
    revoke_api_key(session=session, key=key)
    session.commit()
    request.app.state.auth_cache.drop_user(target.id)
    return key_view(key)
