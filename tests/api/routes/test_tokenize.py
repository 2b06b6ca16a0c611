"""``/v1/tokenize`` and ``/v1/detokenize`` through the API: bodies checked before proxying (400 naming the field,
no server needed), a model the caller may not use is a 404, and good requests are answered by a real inference
server (the tiny model with one adapter) whose ids equal the engine's own."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from contracts.decoding import DecodeRequest, ModelTarget
from tests.api.routes.job_kit import BASE
from tests.worker.ml.decoding.engine_helpers import make_random_adapter

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name three colours."}]
ADAPTER = f"ft:{BASE}:demo:ftjob-1"


@pytest.fixture(scope="module")
def inference_server(tiny_llama_dir, tmp_path_factory):
    """A real serving app (tiny model) answering for BASE and ADAPTER (an Alpaca adapter): (url, engine, dir)."""
    import uvicorn

    from worker.ml.decoding.engine import InferenceEngine
    from worker.serving.app import create_serving_app

    adapter_dir = make_random_adapter(tiny_llama_dir, tmp_path_factory.mktemp("api-adapter"), seed=5)
    targets = {BASE: ModelTarget(BASE), ADAPTER: ModelTarget(ADAPTER, adapter_dir)}
    engine = InferenceEngine(tiny_llama_dir, device="cpu", dtype="float32")
    app = create_serving_app(lambda: engine, targets.__getitem__)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", engine, adapter_dir
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture
def alice_adapter(app, alice, inference_server):
    from models.db import session_scope
    from models.registry import Adapter

    with session_scope(app.state.session_factory) as s:
        s.add(Adapter(owner_id=alice.id, name=ADAPTER, base_model=BASE, path=str(inference_server[2]), config={},
                      metrics={}))
    return ADAPTER


@pytest.mark.parametrize(("path", "body", "param"), [
    ("/v1/tokenize", {"model": BASE}, "prompt"),
    ("/v1/tokenize", {"model": BASE, "prompt": "a", "messages": MESSAGES}, "messages"),
    ("/v1/tokenize", {"model": BASE, "messages": []}, "messages"),
    ("/v1/tokenize", {"model": BASE, "prompt": ["a"]}, "prompt"),
    ("/v1/tokenize", {"model": BASE, "prompt": "a", "add_special_tokens": "maybe"}, "add_special_tokens"),
    ("/v1/tokenize", {"prompt": "a"}, "model"),
    ("/v1/detokenize", {"model": BASE, "tokens": [1, "x"]}, "tokens.1"),
    ("/v1/detokenize", {"model": BASE, "tokens": 5}, "tokens"),
])
def test_bad_bodies_are_400s_naming_the_field_with_no_inference_server(client, alice, path, body, param):
    r = client.post(path, headers=alice.headers, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


def test_auth_and_model_access(client, alice, bob, alice_adapter, settings):
    assert client.post("/v1/tokenize", json={"model": BASE, "prompt": "a"}).status_code == 401
    r = client.post("/v1/detokenize", headers=bob.headers, json={"model": alice_adapter, "tokens": [1]})
    assert r.status_code == 404 and r.json()["error"]["param"] == "model"
    r = client.post("/v1/tokenize", headers=alice.headers, json={"model": BASE, "prompt": "a"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "no_inference_server"


def test_answers_come_from_the_inference_server(client, alice, alice_adapter, settings, inference_server):
    url, engine, adapter_dir = inference_server
    settings.inference_url = url
    for model, adapter in ((BASE, None), (alice_adapter, adapter_dir)):
        r = client.post("/v1/tokenize", headers=alice.headers, json={"model": model, "messages": MESSAGES})
        assert r.status_code == 200, r.text
        want = engine.encode(DecodeRequest(messages=MESSAGES, adapter_dir=adapter))
        assert r.json() == {"count": len(want), "max_model_len": engine.max_positions, "tokens": want}
        back = client.post("/v1/detokenize", headers=alice.headers, json={"model": model, "tokens": want})
        assert back.status_code == 200 and back.json() == {"prompt": engine.tokenizer.decode(want)}
    r = client.post("/v1/detokenize", headers=alice.headers, json={"model": BASE, "tokens": [10**7]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "tokens.0"  # the server's own check, relayed
