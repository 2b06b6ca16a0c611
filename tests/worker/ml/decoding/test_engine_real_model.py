"""The engine on the real embedded base model (SmolLM2-135M-Instruct): batching must not change answers."""
from __future__ import annotations

import json

import pytest

from contracts.decoding import DecodeRequest
from contracts.prompts import render_prompt
from tests.worker.ml.decoding.engine_helpers import make_random_adapter, reference_generate, reference_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_adapter(base_model_dir, tmp_path_factory):
    return make_random_adapter(base_model_dir, tmp_path_factory.mktemp("real-adapter"), seed=3, r=8, scale=0.05)


@pytest.fixture(scope="module")
def eval_prompts(shared_data) -> list[str]:
    rows = [json.loads(line) for line in (shared_data / "user_oriented_instructions.jsonl").read_text().splitlines()]
    return [render_prompt(r["instruction"], r["instances"][0]["input"]) for r in rows[:2]]


def test_fp32_mixed_batch_equals_one_at_a_time(base_model_dir, real_adapter, eval_prompts):
    from worker.ml.decoding.engine import InferenceEngine

    engine = InferenceEngine(base_model_dir, device="cpu", dtype="float32")
    requests = [DecodeRequest(prompt=p, adapter_dir=a, max_new_tokens=12)
                for p in eval_prompts for a in (None, real_adapter)]
    results = engine.generate(requests)
    models = {a: reference_model(base_model_dir, a) for a in (None, real_adapter)}
    for req, res in zip(requests, results):
        want = reference_generate(base_model_dir, req.adapter_dir, req.prompt, 12, models[req.adapter_dir])
        assert res.text == want
    assert any(results[i].text != results[i + 1].text for i in range(0, len(results), 2))


def test_default_precision_chat_ends_with_eos(base_model_dir):
    from worker.ml.decoding.engine import InferenceEngine

    engine = InferenceEngine(base_model_dir)  # auto: bf16 on a CPU with native bf16
    res = engine.generate([DecodeRequest(messages=[{"role": "user", "content": "What is the capital of France?"}],
                                             max_new_tokens=64)])[0]
    assert res.finish_reason == "stop" and "Paris" in res.text
    assert res.completion_tokens < 64
