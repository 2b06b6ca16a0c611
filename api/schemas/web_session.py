"""The dashboard's sign-in: an API key in, a session (cookie) and its CSRF token out."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.users import UserRead


class WebSessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    api_key: str = Field(min_length=1, max_length=256, description="the API key to sign in with (never stored "
                         "by the browser: the session cookie stands for it)")


class WebSessionRead(BaseModel):
    object: str = "web.session"
    id: str
    user: UserRead
    csrf_token: str = Field(description="send it back in the X-CSRF-Token header on every request that "
                            "changes state (POST, PATCH, DELETE) made with the session cookie")
    expires_at: int
