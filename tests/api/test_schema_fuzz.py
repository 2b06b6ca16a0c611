"""Schemathesis against a live ``lorafleet`` API (uvicorn on a free port, a Postgres database of its own,
a stand-in inference server) with a normal user's key, bounded in time: no 5xx, no undocumented
status, no response that breaks its schema or its documented headers, no content-type mismatch.

Every operation gets generated requests in rounds until the time budget is spent: valid ones; then
the operations that name an object again on objects the user really owns (an uploaded file, a queued
fine-tuning job, the user itself), and the completions with a model that exists, so success bodies are
checked too, not only 404s; then invalid ones.
Failures are collected (not shrunk) and reported together: operation, request, response, check.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from contracts.decoding import DecodeResult, ModelTarget
from contracts.openai_format import RequestError, completion_body, parse_openai_body, stream_chunk

pytestmark = pytest.mark.integration

TIME_BUDGET_S = 70.0
EXAMPLES_PER_ROUND = 15
ROW = b'{"instruction": "Say hi", "input": "", "output": "hi"}\n'


def stand_in_inference_app():
    """The inference server's contract (contracts.openai_format) with a canned answer per row: JSON or SSE."""
    app = FastAPI()

    async def answer(request: Request):
        body = await request.json()
        url = request.url.path
        try:
            rows = parse_openai_body(url, body, ModelTarget(body["model"]))
        except RequestError as err:
            return JSONResponse(err.as_body(), status_code=err.status)
        results = [DecodeResult("ok", "stop", 1, 1) for _ in rows]
        if not body.get("stream"):
            return completion_body(url, body["model"], results, body.get("n") or 1)
        chunks = [stream_chunk(url, "id-1", 0, body["model"], i, "ok", "stop") for i in range(len(rows))]
        events = [f"data: {json.dumps(c)}\n\n" for c in chunks] + ["data: [DONE]\n\n"]
        return StreamingResponse(iter(events), media_type="text/event-stream")

    app.post("/v1/chat/completions")(answer)
    app.post("/v1/completions")(answer)
    return app


@pytest.fixture
def live(app, settings):
    """The API under uvicorn (its own lifespan, no dispatcher), with the stand-in inference server."""
    from tests.support.live_server import LiveServer

    inference = LiveServer(stand_in_inference_app())
    settings.inference_url = inference.url
    server = LiveServer(app)
    yield server
    server.stop()
    inference.stop()


@pytest.fixture
def fuzzer(live, app) -> tuple[str, str]:
    """A normal (not admin) user: (id, API key)."""
    from models.crud.users import create_user
    from models.db import session_scope

    with session_scope(app.state.session_factory) as s:
        user, key = create_user(session=s, name="fuzzer", is_admin=False)
        s.flush()
        return user.id, key


@pytest.fixture
def user_key(fuzzer) -> str:
    return fuzzer[1]


@pytest.fixture
def owned_ids(live, fuzzer, user_key) -> dict[str, str]:
    """Objects the fuzzing user owns (or is), for the path parameters that name them."""
    from contracts.base_models import BUILTIN_MODELS

    headers = {"Authorization": f"Bearer {user_key}"}
    with httpx.Client(base_url=live.url, headers=headers, timeout=30) as c:
        f = c.post("/v1/files", files={"file": ("d.jsonl", ROW * 4)}, data={"purpose": "fine-tune"}).json()
        job = c.post("/v1/fine_tuning/jobs", json={"model": next(iter(BUILTIN_MODELS)), "training_file": f["id"]})
        assert job.status_code == 200, job.text
    return {"file_id": f["id"], "job_id": job.json()["id"], "model_id": next(iter(BUILTIN_MODELS)),
            "user_id": fuzzer[0]}


@dataclass
class Findings:
    """Failures by (operation, check title), with one example request/response each."""

    found: dict[tuple[str, str], str] = field(default_factory=dict)
    statuses: Counter = field(default_factory=Counter)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def record(self, case, response, exc: Exception) -> None:
        failures = getattr(exc, "exceptions", None) or [exc]
        for failure in failures:
            title = getattr(failure, "title", type(failure).__name__)
            key = (case.operation.label, title)
            if key not in self.found:
                sent = {k: v for k, v in (("path", case.path_parameters), ("query", case.query),
                                          ("body", case.body)) if v not in (None, {})}
                body = response.text[:300] if response is not None else ""
                self.found[key] = (f"{case.operation.label}: {title}\n  request: {str(sent)[:300]}\n"
                                   f"  response: {getattr(response, 'status_code', '-')} {body}")

    def report(self) -> str:
        return "\n".join(self.found.values())


def fuzz(strategy, send: Callable, examples: int) -> None:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable

    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case):
        send(case)

    try:
        run()
    except Unsatisfiable:  # e.g. no invalid request exists for an operation without parameters
        pass


def operations(schema) -> Iterator:
    for result in schema.get_all_operations():
        yield result.ok()


def test_the_api_keeps_to_its_schema(live, user_key, owned_ids):
    import schemathesis
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
              response_headers_conformance]
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    headers = {"Authorization": f"Bearer {user_key}"}
    findings = Findings()
    deadline = time.monotonic() + TIME_BUDGET_S

    def send(case, model: str | None = None) -> None:
        if time.monotonic() > deadline:
            return
        if model is not None and isinstance(case.body, dict):
            case.body["model"] = model  # a model that exists, so the proxied answer itself is checked
        response = None
        try:
            response = case.call(base_url=live.url, headers=headers, timeout=30)
            findings.statuses[(case.operation.label, response.status_code)] += 1
            case.validate_response(response, checks=checks, headers=headers)
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - all collected, reported at the end
            findings.record(case, response, exc)

    ops = list(operations(schema))
    names = {op.path: op for op in ops}
    owned = [op for op in ops if op.method.upper() != "DELETE"
             and {p.name for p in op.path_parameters} and {p.name for p in op.path_parameters} <= set(owned_ids)]
    rounds = [(op, GenerationMode.POSITIVE, {}, None) for op in ops]
    rounds += [(op, GenerationMode.POSITIVE, {p.name: owned_ids[p.name] for p in op.path_parameters}, None)
               for op in owned]
    rounds += [(names[p], GenerationMode.POSITIVE, {}, owned_ids["model_id"])
               for p in ("/v1/chat/completions", "/v1/completions")]
    rounds += [(op, GenerationMode.NEGATIVE, {}, None) for op in ops]  # last: the first cut when time is short
    for op, mode, path_parameters, model in rounds:
        if time.monotonic() > deadline:
            break
        strategy = op.as_strategy(generation_mode=mode, path_parameters=path_parameters or None)
        fuzz(strategy, lambda case, model=model: send(case, model), EXAMPLES_PER_ROUND)
    print(f"schemathesis: {findings.requests} requests over {len(ops)} operations; statuses: "
          f"{dict(Counter(status for _, status in findings.statuses.elements()))}")
    print("\n".join(f"  {label}: {status} x{n}" for (label, status), n in sorted(findings.statuses.items())))
    assert findings.requests >= len(ops), "the time budget ran out before every operation was tried"
    assert not findings.found, "the API breaks its schema:\n" + findings.report()
