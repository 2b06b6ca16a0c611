"""A real uvicorn server (in a thread, on a free port) serving the tiny model and two adapters."""
from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

import pytest

from contracts.decoding import ModelTarget
from tests.worker.ml.decoding import engine_helpers as helpers

tiny_adapters = helpers.tiny_adapters  # shared fixtures


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def serving_targets(tiny_adapters) -> dict[str, ModelTarget]:
    return {"tiny-base": ModelTarget("tiny-base", None), "ft-a": ModelTarget("ft-a", tiny_adapters["A"]),
            "ft-b": ModelTarget("ft-b", tiny_adapters["B"])}


@contextmanager
def serving_app_running(model_dir, targets: dict[str, ModelTarget], batch_window_ms: float, start_timeout_s: float):
    """The serving app over an fp32 engine of ``model_dir`` under uvicorn in a thread; yields (base_url, app)."""
    import uvicorn

    from worker.ml.decoding.engine import InferenceEngine
    from worker.serving.app import create_serving_app

    app = create_serving_app(lambda: InferenceEngine(model_dir, device="cpu", dtype="float32"),
                             targets.__getitem__, list_models=lambda: list(targets),
                             batch_window_ms=batch_window_ms)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + start_timeout_s
    while not srv.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("the serving app did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/v1", app
    finally:
        srv.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="session")
def server(tiny_llama_dir, serving_targets):
    """Yields (base_url, app); the batch window is wide so concurrent requests share batches."""
    with serving_app_running(tiny_llama_dir, serving_targets, batch_window_ms=50, start_timeout_s=60) as running:
        yield running


@pytest.fixture
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=server[0], api_key="unused", max_retries=0, timeout=60)
