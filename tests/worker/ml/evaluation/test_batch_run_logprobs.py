"""Batch lines with log-probabilities, echo and token prompts (run_batch through contracts.openai_format)."""
from __future__ import annotations

import pytest
import torch

from contracts.batch_records import BatchRequest
from contracts.decoding import ModelTarget
from tests.worker.ml.decoding import engine_helpers as helpers
from tests.worker.ml.decoding.engine_helpers import reference_model
from worker.ml.evaluation.batch_run import run_batch

tiny_adapters, tiny_engine = helpers.tiny_adapters, helpers.tiny_engine  # shared fixtures


def test_batch_lines_score_token_prompts_with_mixed_adapters(tiny_engine, tiny_adapters, tiny_llama_dir):
    targets = {"base": ModelTarget("base", None), "ft-a": ModelTarget("ft-a", tiny_adapters["A"])}
    ids = tiny_engine.tokenizer("The quick brown fox jumps").input_ids
    requests = [
        BatchRequest(i, f"{m}-score", "/v1/completions",
                     {"model": m, "prompt": [ids], "max_tokens": 0, "echo": True, "logprobs": 2})
        for i, m in enumerate(targets)
    ] + [BatchRequest(3, "chat", "/v1/chat/completions",
                      {"model": "ft-a", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3,
                       "temperature": 0, "logprobs": True, "top_logprobs": 1}),
         BatchRequest(4, "bad", "/v1/completions", {"model": "base", "prompt": [[1], ["x"]]})]
    lines = {}
    counts = run_batch(tiny_engine, requests, targets.__getitem__, set(), lambda x: lines.setdefault(x["custom_id"], x))
    assert (counts.completed, counts.failed) == (3, 1)
    assert lines["bad"]["response"]["body"]["error"]["param"] == "prompt"
    for model, target in targets.items():
        choice = lines[f"{model}-score"]["response"]["body"]["choices"][0]
        lp = choice["logprobs"]
        model_ref, _ = reference_model(tiny_llama_dir, target.adapter_dir)
        with torch.no_grad():
            ref = torch.log_softmax(model_ref(input_ids=torch.tensor([ids])).logits[0], dim=-1)
        assert lp["token_logprobs"][0] is None and len(lp["tokens"]) == len(ids)
        assert lp["token_logprobs"][1:] == pytest.approx([ref[p - 1, ids[p]].item() for p in range(1, len(ids))],
                                                         abs=1e-4)
    chat = lines["chat"]["response"]["body"]["choices"][0]["logprobs"]["content"]
    assert len(chat) == 3 and all(len(t["top_logprobs"]) == 1 for t in chat)
