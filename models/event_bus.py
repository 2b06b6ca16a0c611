"""Live job events over Redis pub/sub (production); embedded mode polls the database instead."""
from __future__ import annotations

import json


def job_channel(namespace: str, job_id: str) -> str:
    return f"lorafleet:{namespace}:job:{job_id}"


def event_payload(ev) -> dict:
    """The public shape of a job event (OpenAI fine_tuning.job.event plus lorafleet's job_id)."""
    return {
        "object": "fine_tuning.job.event",
        "id": f"ev-{ev.id}",
        "created_at": int(ev.created_at.timestamp()),
        "level": ev.level,
        "type": ev.type,
        "message": ev.message,
        "data": ev.data or {},
        "job_id": ev.job_id,
    }


def publish(redis_client, namespace: str, job_id: str, payload: dict) -> None:
    redis_client.publish(job_channel(namespace, job_id), json.dumps(payload))
