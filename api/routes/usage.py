"""``GET /v1/usage``: what users consumed (GPU-seconds by device kind, tokens trained and generated, teacher
tokens and cost), read from the usage ledger (``models.crud.usage``) in UTC hour or day buckets.

Shaped like OpenAI's usage API: ``start_time`` / ``end_time`` in unix seconds, ``bucket_width``,
``group_by``, ``limit`` buckets per page and a ``page`` cursor. Users see their own usage; an admin sees
everyone's, or chosen users' with ``user_id``. The ledger's resolution is one hour: a bucket counts the
hours that start inside it.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import CurrentUser, SessionDep
from api.errors import APIError, error_responses
from api.schemas.usage import GROUP_KEYS, UsageBucket, UsagePage, UsageResult
from models.base import utcnow
from models.crud.usage import BUCKET_WIDTHS, bucket_floor, hour_start, usage_between
from models.user import User

router = APIRouter(tags=["usage"])
MAX_UNIX = 253402300799  # 9999-12-31T23:59:59Z, the last second a datetime holds
GROUP_BY = "any of user_id, job_id, kind, device_kind (repeat the parameter, or a comma list)"
DEFAULT_LIMITS = {"1d": (7, 31), "1h": (24, 168)}  # (default, most) buckets per page, as OpenAI's


def parse_group_by(values: list[str] | None) -> list[str]:
    """Repeated or comma-separated group keys, in the order given, without repeats; 400 for an unknown one."""
    keys: list[str] = []
    for value in values or []:
        for key in (k.strip() for k in value.split(",")):
            if key not in GROUP_KEYS:
                raise APIError(400, "invalid_value", f"group_by: {key!r} is not one of {list(GROUP_KEYS)}",
                               "group_by")
            if key not in keys:
                keys.append(key)
    return keys


def owners_in_view(caller: User, user_ids: list[str] | None) -> list[str] | None:
    """Whose usage the caller may see: their own; an admin anyone's (None: everyone's)."""
    if not user_ids:
        return None if caller.is_admin else [caller.id]
    if not caller.is_admin and set(user_ids) != {caller.id}:
        raise APIError(403, "forbidden", "only admins see other users' usage", "user_id")
    return list(dict.fromkeys(user_ids))


def time_window(start_time: int, end_time: int | None, page: str | None, width: timedelta,
                limit: int) -> tuple[datetime, datetime, datetime]:
    """(this page's start, its end, the request's end): ``limit`` buckets from the page cursor or start."""
    start = datetime.fromtimestamp(start_time, UTC)
    end = datetime.fromtimestamp(end_time, UTC) if end_time is not None else utcnow()
    if end <= start:
        raise APIError(400, "invalid_value", "end_time must be after start_time", "end_time")
    page_start = start
    if page is not None:
        if not page.isascii() or not page.isdigit() or not start_time <= int(page) < end.timestamp():
            raise APIError(400, "invalid_value", f"page: {page!r} is not a cursor this request returned", "page")
        page_start = max(start, datetime.fromtimestamp(int(page), UTC))
    return page_start, min(end, bucket_floor(page_start, width) + limit * width), end


def unix(t: datetime) -> int:
    return int(t.timestamp())


@router.get("/usage", response_model=UsagePage, responses=error_responses(403))
def read_usage(session: SessionDep, caller: CurrentUser,
               start_time: int = Query(ge=0, le=MAX_UNIX, description="unix seconds (inclusive)"),
               end_time: int | None = Query(None, ge=0, le=MAX_UNIX, description="unix seconds (exclusive); "
                                            "default: now"),
               bucket_width: str = Query("1d", pattern="^(1h|1d)$", description="1h or 1d (UTC)"),
               group_by: Annotated[list[str] | None, Query(description=GROUP_BY)] = None,
               user_id: Annotated[list[str] | None, Query(description="admins: only these users (repeatable)")] = None,
               limit: int | None = Query(None, ge=1, le=168, description="buckets per page (1d: default 7, "
                                         "at most 31; 1h: default 24, at most 168)"),
               page: str | None = Query(None, description="the next_page of a previous answer")) -> UsagePage:
    default_limit, most = DEFAULT_LIMITS[bucket_width]
    if limit is not None and limit > most:
        raise APIError(400, "invalid_value", f"limit: at most {most} buckets of {bucket_width}", "limit")
    width, keys = BUCKET_WIDTHS[bucket_width], parse_group_by(group_by)
    owners = owners_in_view(caller, user_id)
    page_start, page_end, end = time_window(start_time, end_time, page, width, limit or default_limit)
    buckets = usage_between(session, owners, page_start, page_end, keys, bucket_width)
    first = hour_start(page_start)  # a bucket counts whole hours: the first one from the hour of start_time
    data = [UsageBucket(start_time=unix(max(b.start, first)), end_time=unix(min(b.end, page_end)),
                        results=[UsageResult(**r) for r in b.results]) for b in buckets]
    has_more = page_end < end
    return UsagePage(data=data, has_more=has_more, next_page=str(int(page_end.timestamp())) if has_more else None)
