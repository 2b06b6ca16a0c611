"""``GET /v1/pool`` (admins): the pool as the dispatcher sees it. Workers come from the registry (each
``lorafleet worker`` heartbeats its row); what waits and runs from the jobs table; each user's usage
from the usage ledger (``models.crud.usage``), with the same half-life fair share uses."""
from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import AdminUser, SessionDep, SettingsDep
from api.errors import error_responses
from api.schemas.common import to_unix
from api.schemas.pool import PoolPending, PoolQuotas, PoolRead, PoolUsage, PoolUser, PoolWorker
from models.base import utcnow
from models.crud.queue import jobs_by_worker, pending_counts, running_counts
from models.crud.usage import decayed_gpu_seconds, usage_today
from models.user import User
from models.worker import Worker

router = APIRouter(tags=["pool"])


def worker_views(session: Session, now: datetime) -> list[PoolWorker]:
    running = jobs_by_worker(session)
    rows = session.execute(select(Worker).order_by(Worker.host, Worker.id)).scalars()
    return [PoolWorker(id=w.id, host=w.host, device_kind=w.device_kind, gpu_indexes=list(w.gpu_indexes or []),
                       state=w.state, started_at=to_unix(w.started_at), heartbeat_at=to_unix(w.heartbeat_at),
                       heartbeat_age_s=round(max(0.0, (now - w.heartbeat_at).total_seconds()), 3), slots=w.slots,
                       memory_total_bytes=w.memory_total_bytes, memory_free_bytes=w.memory_free_bytes,
                       base_models=list(w.base_models or []), queues=list(w.queues or []), version=w.version,
                       jobs=running.get(w.id, [])) for w in rows]


def user_views(session: Session, now: datetime, half_life_s: float, pending: dict[str, int]) -> list[PoolUser]:
    """Every user's standing; ``share`` counts only users with work (waiting or running)."""
    running = running_counts(session)
    users = list(session.execute(select(User).order_by(User.created_at, User.id)).scalars())
    ids = [u.id for u in users]
    decayed, today = decayed_gpu_seconds(session, ids, now, half_life_s), usage_today(session, ids, now)
    with_work = {u.id for u in users if pending.get(u.id) or running.get(u.id)}
    total_weight = sum(u.share_weight for u in users if u.id in with_work)
    return [PoolUser(id=u.id, name=u.name, is_active=u.is_active, weight=u.share_weight,
                     share=u.share_weight / total_weight if u.id in with_work and total_weight > 0 else 0.0,
                     pending_jobs=pending.get(u.id, 0), running_jobs=running.get(u.id, 0),
                     usage=PoolUsage(decayed_gpu_seconds=decayed[u.id], gpu_hours_today=today[u.id][0],
                                     teacher_usd_today=today[u.id][1]),
                     quotas=PoolQuotas(max_running_jobs=u.max_running_jobs, gpu_hours_per_day=u.gpu_hours_per_day,
                                       teacher_usd_per_day=u.teacher_usd_per_day))
            for u in users]


@router.get("/pool", response_model=PoolRead, responses=error_responses(403))
def read_pool(session: SessionDep, settings: SettingsDep, _: AdminUser) -> PoolRead:
    """Workers and what each runs, pending jobs per queue and per user, each user's weight, share, usage and caps."""
    now = utcnow()
    half_life_s = settings.fair_share_half_life_s
    by_queue, by_user = pending_counts(session)
    return PoolRead(half_life_s=half_life_s, workers=worker_views(session, now),
                    pending=PoolPending(total=sum(by_queue.values()), by_queue=by_queue, by_user=by_user),
                    users=user_views(session, now, half_life_s, by_user))
