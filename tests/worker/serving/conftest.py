"""A real uvicorn server (in a thread, on a free port) serving the tiny model and two adapters."""
from __future__ import annotations

import socket
import threading
import time

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


@pytest.fixture(scope="session")
def server(tiny_llama_dir, serving_targets):
    """Yields (base_url, app); the batch window is wide so concurrent requests share batches."""
    import uvicorn

    from worker.ml.decoding.engine import InferenceEngine
    from worker.serving.app import create_serving_app

    app = create_serving_app(lambda: InferenceEngine(tiny_llama_dir, device="cpu", dtype="float32"),
                             serving_targets.__getitem__, list_models=lambda: list(serving_targets),
                             batch_window_ms=50)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not srv.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("the serving app did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1", app
    srv.should_exit = True
    thread.join(timeout=30)


@pytest.fixture
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=server[0], api_key="unused", max_retries=0, timeout=60)
