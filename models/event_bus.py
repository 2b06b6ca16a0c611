"""Live job events over Redis pub/sub (production); embedded mode polls the database instead."""
from __future__ import annotations

import json

from contracts.events import JobEvent


def job_channel(namespace: str, job_id: str) -> str:
    return f"lorafleet:{namespace}:job:{job_id}"


def event_payload(ev) -> dict:
    """The public shape of a job event row, as JSON-ready data (``contracts.events.JobEvent``)."""
    return JobEvent.from_row(ev).model_dump()


def publish(redis_client, namespace: str, job_id: str, payload: dict) -> None:
    redis_client.publish(job_channel(namespace, job_id), json.dumps(payload))
