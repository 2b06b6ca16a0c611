"""The usage ledger (``models.job.UsageRecord``): one row per owner, job, kind, UTC hour and device kind.

Writers only ever add increments (``add_usage``): the runner adds compute seconds from heartbeats, the
handlers add tokens, the API adds what serving generated. One row per hour bucket keeps the table
small whatever the write rate, and makes a write idempotent in shape (insert or add). Readers sum:
``usage_between`` for ``GET /v1/usage``, ``usage_today`` for the daily caps, ``decayed_gpu_seconds``
for fair share. "GPU-seconds" are the compute seconds of rows with a device kind (work on one of our
devices; a remote teacher's rows have ``device_kind == ""``).
"""
from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from models.job import UsageRecord

COUNTERS = ("compute_seconds", "tokens_trained", "tokens_generated", "teacher_tokens", "teacher_cost_usd")
GROUP_COLUMNS = {"user_id": UsageRecord.owner_id, "job_id": UsageRecord.job_id, "kind": UsageRecord.kind,
                 "device_kind": UsageRecord.device_kind}
BUCKET_WIDTHS = {"1h": timedelta(hours=1), "1d": timedelta(days=1)}
HOUR = timedelta(hours=1)
DECAY_HORIZON_HALF_LIVES = 10  # older buckets weigh < 0.1% of their seconds: left out of fair share
BUCKET_CONSTRAINT = "uq_usage_records_bucket"


def hour_start(t: datetime) -> datetime:
    """The start of ``t``'s UTC hour: the ledger's bucket."""
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_start(t: datetime) -> datetime:
    return hour_start(t).replace(hour=0)


def bucket_floor(t: datetime, width: timedelta) -> datetime:
    return day_start(t) if width >= timedelta(days=1) else hour_start(t)


def _gpu_seconds():
    """Compute seconds spent on one of our devices (rows with a device kind)."""
    return case((UsageRecord.device_kind != "", UsageRecord.compute_seconds), else_=0.0)


def add_usage(*, session: Session, owner_id: str, job_id: str | None, kind: str, now: datetime,
              device_kind: str = "", compute_seconds: float = 0.0, tokens_trained: int = 0,
              tokens_generated: int = 0, teacher_tokens: int = 0, teacher_cost_usd: float = 0.0) -> None:
    """Add increments to the row of ``now``'s hour bucket (created if missing). Safe under concurrent
    writers on Postgres: the row is updated in place, or inserted with ``ON CONFLICT DO UPDATE``. The
    caller commits."""
    increments = {"compute_seconds": float(compute_seconds), "tokens_trained": int(tokens_trained),
                  "tokens_generated": int(tokens_generated), "teacher_tokens": int(teacher_tokens),
                  "teacher_cost_usd": float(teacher_cost_usd)}
    if not any(increments.values()):
        return
    key = {"owner_id": owner_id, "job_id": job_id, "kind": kind, "bucket_start": hour_start(now),
           "device_kind": device_kind}
    if _add_to_existing_row(session, key, increments):
        return
    if session.get_bind().dialect.name == "postgresql":
        _insert_or_add(session, key, increments)
    else:  # SQLite serialises writers: the row was missing a moment ago, so insert it
        session.add(UsageRecord(**key, **increments))
        session.flush()


def _add_to_existing_row(session: Session, key: dict, increments: dict) -> bool:
    """One UPDATE adding the increments to the bucket's row; False when there is no row yet. (A job id of
    NULL never conflicts in a unique constraint, so serving rows rely on this path to stay one per hour.)"""
    match = [getattr(UsageRecord, k) == v for k, v in key.items() if v is not None]
    match += [UsageRecord.job_id.is_(None)] if key["job_id"] is None else []
    values = {name: getattr(UsageRecord, name) + amount for name, amount in increments.items()}
    result = session.execute(update(UsageRecord).where(*match).values(**values)
                             .execution_options(synchronize_session=False))
    return result.rowcount > 0


def _insert_or_add(session: Session, key: dict, increments: dict) -> None:
    """Postgres: insert the bucket's row, or add to it if a concurrent writer inserted it first."""
    stmt = pg_insert(UsageRecord).values(**key, **increments)
    added = {name: getattr(UsageRecord, name) + getattr(stmt.excluded, name) for name in increments}
    session.execute(stmt.on_conflict_do_update(constraint=BUCKET_CONSTRAINT, set_=added))


def record_job_totals(*, session: Session, owner_id: str, job_id: str, kind: str, now: datetime,
                      **totals: float) -> None:
    """A job reports running totals (``teacher_tokens=…``, ``tokens_trained=…``; a resumed job reports totals
    that include its earlier attempts): the ledger gets only what is new since what it already holds for
    the job, never a negative amount."""
    columns = [getattr(UsageRecord, name) for name in totals]
    held = session.execute(select(*(func.coalesce(func.sum(c), 0) for c in columns))
                           .where(UsageRecord.job_id == job_id, UsageRecord.kind == kind)).one()
    add_usage(session=session, owner_id=owner_id, job_id=job_id, kind=kind, now=now,
              **{name: max(type(total)(0), total - type(total)(have)) for (name, total), have in zip(totals.items(),
                                                                                                  held, strict=True)})


@dataclass
class UsageBucket:
    """One bucket of ``GET /v1/usage``: its bounds and one result per group (dicts of group keys and sums)."""

    start: datetime
    end: datetime
    results: list[dict] = field(default_factory=list)


def usage_between(session: Session, owner_ids: Collection[str] | None, start: datetime, end: datetime,
                  group_by: Sequence[str] = (), bucket_width: str = "1d") -> list[UsageBucket]:
    """Usage from ``start`` (its hour included) to ``end``, in buckets of ``bucket_width`` aligned to UTC
    hours or days (empty buckets included), each with one result per combination of ``group_by`` values.
    ``owner_ids`` None: everyone's."""
    width = BUCKET_WIDTHS[bucket_width]
    columns = [GROUP_COLUMNS[g] for g in group_by]
    q = (select(UsageRecord.bucket_start, *columns, func.sum(_gpu_seconds()),
                *[func.sum(getattr(UsageRecord, c)) for c in COUNTERS])
         .where(UsageRecord.bucket_start >= hour_start(start), UsageRecord.bucket_start < end)
         .group_by(UsageRecord.bucket_start, *columns))
    if owner_ids is not None:
        q = q.where(UsageRecord.owner_id.in_(list(owner_ids)))
    buckets = _empty_buckets(start, end, width)
    sums: dict[tuple[datetime, tuple], dict] = {}
    for row in session.execute(q):
        bucket, groups, numbers = bucket_floor(row[0], width), tuple(row[1:1 + len(columns)]), row[1 + len(columns):]
        acc = sums.setdefault((bucket, groups), {**dict(zip(group_by, groups)), **_zero_totals()})
        for name, value in zip(("gpu_seconds", *COUNTERS), numbers):
            acc[name] += type(acc[name])(value or 0)  # Postgres sums BIGINTs as NUMERIC (Decimal)
    for (bucket, groups), acc in sorted(sums.items(), key=lambda kv: (kv[0][0], [str(g) for g in kv[0][1]])):
        if bucket in buckets:
            buckets[bucket].results.append(acc)
    return list(buckets.values())


def _zero_totals() -> dict:
    return {"gpu_seconds": 0.0, "compute_seconds": 0.0, "tokens_trained": 0, "tokens_generated": 0,
            "teacher_tokens": 0, "teacher_cost_usd": 0.0}


def _empty_buckets(start: datetime, end: datetime, width: timedelta) -> dict[datetime, UsageBucket]:
    buckets: dict[datetime, UsageBucket] = {}
    t = bucket_floor(start, width)
    while t < end:
        buckets[t] = UsageBucket(start=t, end=t + width)
        t += width
    return buckets


def usage_today(session: Session, owner_ids: Collection[str], now: datetime) -> dict[str, tuple[float, float]]:
    """Each owner's (GPU-hours, teacher USD) since the start of ``now``'s UTC day: what the daily caps
    compare against. Every owner asked for is in the answer (zeros when nothing was used)."""
    out = {owner: (0.0, 0.0) for owner in owner_ids}
    if not out:
        return out
    q = (select(UsageRecord.owner_id, func.sum(_gpu_seconds()), func.sum(UsageRecord.teacher_cost_usd))
         .where(UsageRecord.owner_id.in_(list(out)), UsageRecord.bucket_start >= day_start(now))
         .group_by(UsageRecord.owner_id))
    for owner, gpu_s, usd in session.execute(q):
        out[owner] = (float(gpu_s or 0.0) / 3600.0, float(usd or 0.0))
    return out


def decayed_gpu_seconds(session: Session, owner_ids: Collection[str], now: datetime,
                        half_life_s: float, exclude_job_ids: Collection[str] = ()) -> dict[str, float]:
    """Each owner's GPU-seconds, each hour bucket weighted ``0.5 ** (age / half_life_s)`` (age from the
    bucket's middle, never negative): recent use counts fully, old use fades. Fair share ranks users by it.
    Every owner asked for is in the answer. ``exclude_job_ids``: jobs the caller charges otherwise (the
    policy charges a running job its whole expected run, so its metered seconds would count twice)."""
    out = {owner: 0.0 for owner in owner_ids}
    if not out or half_life_s <= 0:
        return out
    since = hour_start(now - timedelta(seconds=half_life_s * DECAY_HORIZON_HALF_LIVES))
    q = (select(UsageRecord.owner_id, UsageRecord.bucket_start, func.sum(_gpu_seconds()))
         .where(UsageRecord.owner_id.in_(list(out)), UsageRecord.bucket_start >= since,
                UsageRecord.device_kind != "")
         .group_by(UsageRecord.owner_id, UsageRecord.bucket_start))
    if exclude_job_ids:
        q = q.where(UsageRecord.job_id.is_(None) | UsageRecord.job_id.not_in(list(exclude_job_ids)))
    for owner, bucket, gpu_s in session.execute(q):
        age_s = max(0.0, (now - (bucket + HOUR / 2)).total_seconds())
        out[owner] += float(gpu_s or 0.0) * 0.5 ** (age_s / half_life_s)
    return out
