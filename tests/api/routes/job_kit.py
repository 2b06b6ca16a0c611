"""Submitting one job of each kind through the API (no worker: jobs stay queued), and reaching into the
test's database to put a job in a state only a worker would (running, more events, a checkpoint)."""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from api.job_kinds import BATCH, EVAL, FINE_TUNING, GENERATION, PREFLIGHT, JobKindSpec

BASE = "smollm2-135m-instruct"
ALPACA_LINE = '{"instruction": "Say hi", "input": "", "output": "hi"}\n'
TEACHER = {"base_url": "http://127.0.0.1:9/v1", "model": "teacher-x", "api_key": "sk-secret-teacher"}


def batch_line(custom_id: str, model: str = BASE) -> str:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
                       "body": {"model": model, "messages": [{"role": "user", "content": "hi"}],
                                "max_tokens": 4}}) + "\n"


@dataclass(frozen=True)
class Kind:
    """One kind as the tests drive it: its declaration, and how to make a valid create body for a user."""

    spec: JobKindSpec
    body: Callable[[Callable, object], dict]  # (upload, user) -> create body

    @property
    def url(self) -> str:
        return f"/v1{self.spec.prefix}"

    def __repr__(self) -> str:
        return self.spec.kind_value


KINDS = {
    "preflight": Kind(PREFLIGHT, lambda upload, u: {"model": BASE, "training_file": upload(u, ALPACA_LINE)["id"]}),
    "fine_tuning": Kind(FINE_TUNING, lambda upload, u: {"model": BASE,
                                                        "training_file": upload(u, ALPACA_LINE)["id"]}),
    "generation": Kind(GENERATION, lambda upload, u: {"teacher": TEACHER, "num_instructions": 5}),
    "eval": Kind(EVAL, lambda upload, u: {"eval_file": upload(u, ALPACA_LINE, "evals")["id"], "models": [BASE]}),
    "batch": Kind(BATCH, lambda upload, u: {"input_file_id": upload(u, batch_line("a"), "batch")["id"],
                                            "endpoint": "/v1/chat/completions"}),
}


def submit(client, upload, user, kind: Kind, **extra) -> dict:
    r = client.post(kind.url, headers=user.headers, json={**kind.body(upload, user), **extra})
    assert r.status_code == 200, r.text
    return r.json()


def update_job(app, job_id: str, **fields) -> None:
    """Set columns of a job row as a worker would (status, started_at, progress, result...)."""
    from models.db import session_scope
    from models.job import Job

    with session_scope(app.state.session_factory) as s:
        job = s.get(Job, job_id)
        for name, value in fields.items():
            setattr(job, name, value)


def add_events(app, job_id: str, n: int) -> None:
    from models.crud import jobs as job_crud
    from models.db import session_scope

    with session_scope(app.state.session_factory) as s:
        for i in range(n):
            job_crud.add_event(session=s, job_id=job_id, message=f"step {i}", type="metrics", data={"step": i})


def error_of(r) -> dict:
    return r.json()["error"]
