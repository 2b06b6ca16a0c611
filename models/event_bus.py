"""Live job events over Redis pub/sub (production); embedded mode polls the database instead."""
from __future__ import annotations

import json
import logging
from functools import lru_cache

from contracts.events import JobEvent


def job_channel(namespace: str, job_id: str) -> str:
    return f"lorafleet:{namespace}:job:{job_id}"


def event_payload(ev) -> dict:
    """The public shape of a job event row, as JSON-ready data (``contracts.events.JobEvent``)."""
    return JobEvent.from_row(ev).model_dump()


def publish(redis_client, namespace: str, job_id: str, payload: dict) -> None:
    redis_client.publish(job_channel(namespace, job_id), json.dumps(payload))


def dispatcher_channel(namespace: str) -> str:
    return f"lorafleet:{namespace}:dispatcher:wake"


def wake_dispatcher(settings, redis_client=None) -> None:
    """Tell the dispatchers something changed (a submission, a freed slot), so the next pass starts now
    instead of at its interval. Best effort: without Redis, or if it is down, the interval still runs."""
    if not settings.redis_url:
        return
    try:
        (redis_client or _wake_client(settings.redis_url)).publish(dispatcher_channel(settings.namespace), "1")
    except Exception:
        logging.getLogger(__name__).debug("could not wake the dispatcher", exc_info=True)


@lru_cache(maxsize=4)
def _wake_client(url: str):
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
