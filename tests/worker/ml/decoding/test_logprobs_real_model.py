"""Log-probabilities on the real embedded base model (SmolLM2-135M-Instruct, fp32) with a LoRA adapter in
the same batch: echoed prompt and generated tokens equal a direct HF forward pass within 1e-4."""
from __future__ import annotations

import pytest
import torch

from contracts.decoding import DecodeRequest
from tests.worker.ml.decoding.engine_helpers import make_random_adapter, reference_model

pytestmark = pytest.mark.slow


def test_fp32_echo_and_generated_logprobs_equal_a_forward_pass(base_model_dir, tmp_path):
    from worker.ml.decoding.engine import InferenceEngine

    adapter = make_random_adapter(base_model_dir, tmp_path / "adapter", seed=5, r=8, scale=0.05)
    engine = InferenceEngine(base_model_dir, device="cpu", dtype="float32")
    prompts = ["Question: What is the capital of France?\nAnswer:", "Water freezes at"]
    requests = [DecodeRequest(prompt=p, adapter_dir=a, max_new_tokens=4, logprobs=3, echo=True)
                for p in prompts for a in (None, adapter)]
    results = engine.generate(requests)
    models = {a: reference_model(base_model_dir, a)[0] for a in (None, adapter)}
    for req, res in zip(requests, results):
        model = models[req.adapter_dir]
        ids = res.logprobs.token_ids
        with torch.no_grad():
            ref = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)
        want = [ref[p - 1, ids[p]].item() for p in range(1, len(ids))]
        assert res.logprobs.token_logprobs[1:] == pytest.approx(want, abs=1e-4)
        assert [t for t, _ in res.logprobs.top_logprobs[-1]] == torch.topk(ref[-2], 3).indices.tolist()
        assert len(ids) == len(engine.tokenizer(req.prompt).input_ids) + res.completion_tokens
    assert results[0].logprobs.token_logprobs[1] != pytest.approx(results[1].logprobs.token_logprobs[1], abs=1e-4)
