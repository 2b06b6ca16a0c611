"""A tiny real OpenAI-compatible HTTP server (FastAPI + uvicorn in a thread) for teacher tests.

Behaviour is scripted per request through ``StubServer.script``: a function
``(api, prompt_or_messages, hit_number) -> reply`` where ``reply`` is a ``str`` (the completion
text), a ``(text, finish_reason)`` tuple, or a ``StubError(status, retry_after=None)``, or a
``StubDelay(seconds, then)`` to make the client time out.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.support.live_server import LiveServer


@dataclass
class StubError:
    status: int
    retry_after: float | None = None
    message: str = ""
    param: str | None = None
    code: str | None = None


@dataclass
class StubDelay:
    seconds: float
    then: Any = "ok"


@dataclass
class StubServer:
    script: Callable[[str, Any, int], Any] = lambda api, prompt, hit: "ok"
    hits: Counter = field(default_factory=Counter)
    bodies: list = field(default_factory=list)
    auth_headers: list = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    base_url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def key_of(self, body: dict) -> str:
        return body.get("prompt") if "prompt" in body else body["messages"][-1]["content"]

    def handle(self, api: str, body: dict, auth: str | None):
        key = self.key_of(body)
        with self._lock:
            self.hits[key] += 1
            hit = self.hits[key]
            self.bodies.append(body)
            self.auth_headers.append(auth)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            reply = self.script(api, key, hit)
            if isinstance(reply, StubDelay):
                time.sleep(reply.seconds)
                reply = reply.then
            if isinstance(reply, StubError):
                headers = {"retry-after": str(reply.retry_after)} if reply.retry_after is not None else {}
                return JSONResponse({"error": {"message": reply.message or f"stub error {reply.status}", "type": "stub",
                                               "code": reply.code or str(reply.status), "param": reply.param}},
                                    status_code=reply.status, headers=headers)
            text, finish = reply if isinstance(reply, tuple) else (reply, "stop")
            usage = {"prompt_tokens": len(key.split()), "completion_tokens": len(text.split()),
                     "total_tokens": len(key.split()) + len(text.split())}
            if api == "chat":
                choice = {"index": 0, "finish_reason": finish, "logprobs": None,
                          "message": {"role": "assistant", "content": text}}
                obj = "chat.completion"
            else:
                choice = {"index": 0, "finish_reason": finish, "logprobs": None, "text": text}
                obj = "text_completion"
            return JSONResponse({"id": f"cmpl-{hit}", "object": obj, "created": 0, "model": body["model"],
                                 "choices": [choice], "usage": usage})
        finally:
            with self._lock:
                self.in_flight -= 1


def start_stub_server() -> tuple[StubServer, Callable[[], None]]:
    stub = StubServer()
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        return await _in_thread(stub.handle, "chat", body, request.headers.get("authorization"))

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await request.json()
        return await _in_thread(stub.handle, "completions", body, request.headers.get("authorization"))

    live = LiveServer(app, log_level="error", start_timeout=10)
    stub.base_url = f"{live.url}/v1"

    def stop() -> None:
        live.stop()

    return stub, stop


async def _in_thread(fn, *args):
    import anyio

    return await anyio.to_thread.run_sync(lambda: fn(*args))
