"""``/v1/tokenize`` and ``/v1/detokenize`` on the inference server: the ids the engine itself decodes from, for
the base model (chat template) and for adapters (their own prompt template), and 400s naming the field."""
from __future__ import annotations

import httpx
import pytest

from contracts.decoding import DecodeRequest
from worker.ml.decoding.engine import InferenceEngine

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name three colours."}]


@pytest.fixture(scope="module")
def engine(tiny_llama_dir):
    return InferenceEngine(tiny_llama_dir, device="cpu", dtype="float32")


def post(server, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{server[0]}{path}", json=body, timeout=60)


@pytest.mark.parametrize("model", ["tiny-base", "ft-a", "ft-b"])
def test_messages_tokenize_to_what_the_engine_decodes_from(server, engine, serving_targets, model):
    got = post(server, "/tokenize", {"model": model, "messages": MESSAGES})
    assert got.status_code == 200, got.text
    want = engine.encode(DecodeRequest(messages=MESSAGES, adapter_dir=serving_targets[model].adapter_dir))
    body = got.json()
    assert body == {"count": len(want), "max_model_len": engine.max_positions, "tokens": want}


def test_templates_differ_between_base_and_alpaca_adapter(server):
    base = post(server, "/tokenize", {"model": "tiny-base", "messages": MESSAGES}).json()["tokens"]
    alpaca = post(server, "/tokenize", {"model": "ft-a", "messages": MESSAGES}).json()["tokens"]
    assert base != alpaca


def test_prompt_and_generation_prompt_and_token_strs(server, engine):
    body = post(server, "/tokenize", {"model": "ft-a", "prompt": "Once upon a time", "return_token_strs": True}).json()
    assert body["tokens"] == engine.tokenizer("Once upon a time").input_ids
    assert body["token_strs"] == engine.tokenizer.convert_ids_to_tokens(body["tokens"])
    with_prompt = post(server, "/tokenize", {"model": "tiny-base", "messages": MESSAGES}).json()["tokens"]
    without = post(server, "/tokenize", {"model": "tiny-base", "messages": MESSAGES,
                                         "add_generation_prompt": False}).json()["tokens"]
    assert len(without) < len(with_prompt) and with_prompt[:len(without)] == without


def test_detokenize_round_trips(server, engine):
    ids = post(server, "/tokenize", {"model": "ft-b", "prompt": "Hello, world!"}).json()["tokens"]
    got = post(server, "/detokenize", {"model": "ft-b", "tokens": ids})
    assert got.status_code == 200 and got.json() == {"prompt": engine.tokenizer.decode(ids)}
    assert "Hello, world!" in got.json()["prompt"]


@pytest.mark.parametrize(("path", "body", "param", "code"), [
    ("/tokenize", {"model": "tiny-base"}, "prompt", "missing_required_parameter"),
    ("/tokenize", {"model": "tiny-base", "prompt": "a", "messages": MESSAGES}, "messages", "invalid_value"),
    ("/tokenize", {"model": "tiny-base", "prompt": 3}, "prompt", "invalid_value"),
    ("/tokenize", {"model": "tiny-base", "prompt": "a", "add_generation_prompt": False}, "add_generation_prompt",
     "invalid_value"),
    ("/tokenize", {"model": "tiny-base", "messages": [{"content": "hi"}]}, "messages", "invalid_value"),
    ("/tokenize", {"model": "tiny-base", "prompt": "a", "continue_final_message": True}, "continue_final_message",
     "unsupported_parameter"),
    ("/tokenize", {"prompt": "a"}, "model", "missing_required_parameter"),
    ("/tokenize", {"model": "ft-a", "messages": [{"role": "system", "content": "x"}]}, "messages", "invalid_value"),
    ("/detokenize", {"model": "tiny-base", "tokens": [1, -2]}, "tokens.1", "invalid_value"),
    ("/detokenize", {"model": "tiny-base", "tokens": [1, 10**7]}, "tokens.1", "invalid_value"),
    ("/detokenize", {"model": "tiny-base"}, "tokens", "missing_required_parameter"),
])
def test_bad_bodies_are_400s_naming_the_field(server, path, body, param, code):
    got = post(server, path, body)
    assert got.status_code == 400, got.text
    assert got.json()["error"]["param"] == param and got.json()["error"]["code"] == code


def test_unknown_model_is_404(server):
    got = post(server, "/detokenize", {"model": "nope", "tokens": [1]})
    assert got.status_code == 404 and got.json()["error"]["code"] == "model_not_found"
