"""Batch-invariant decoding: a greedy answer is the same alone and in batches of 2, 8 and 16 mixed with
other requests (other lengths, other adapters, sampled rows), at bf16, where the default batching may
change answers (left padding, matmul shapes and adapter sub-batches change with the batch)."""
from __future__ import annotations

import pytest

from contracts.decoding import DecodeRequest
from tests.worker.ml.decoding.engine_helpers import tiny_adapters  # noqa: F401 - fixture
from worker.ml.decoding.rows import DecodeRow

FILLER = ["Hi", "Write a long story about a dragon who learns to cook soup in a small village by the sea.",
          "List five prime numbers.", "What is the capital of France, and why is it famous?", "Translate: bonjour"]


def fillers(count: int, adapters: list) -> list[DecodeRequest]:
    """Short other requests: other lengths, adapters round-robin, every third one sampled."""
    return [DecodeRequest(prompt=FILLER[i % len(FILLER)] * (1 + i % 3), adapter_dir=adapters[i % len(adapters)],
                          max_new_tokens=2 + i % 3, temperature=1.0 if i % 3 == 2 else 0, seed=i)
            for i in range(count)]


def interleave(targets: list[DecodeRequest], others: list[DecodeRequest]) -> tuple[list[DecodeRequest], list[int]]:
    """The targets spread among the others: (batch, the targets' positions)."""
    batch, positions, step = list(others), [], max(1, len(others) // max(1, len(targets)))
    for k, target in enumerate(targets):
        at = min(len(batch), k * (step + 1) + step // 2)
        batch.insert(at, target)
        positions.append(at)
    return batch, positions


@pytest.fixture(scope="module")
def invariant_engine(tiny_llama_dir):
    from worker.ml.decoding.engine import InferenceEngine

    return InferenceEngine(tiny_llama_dir, device="cpu", dtype="bfloat16", batch_invariant=True)


def test_greedy_answers_do_not_depend_on_the_batch(invariant_engine, tiny_adapters):  # noqa: F811
    adapters = [None, tiny_adapters["A"], tiny_adapters["B"]]
    # logprobs=0: the generated tokens' log-probabilities must be equal too (bitwise), not only the argmax
    targets = [DecodeRequest(prompt="Once upon a time", max_new_tokens=8, temperature=0, logprobs=0),
               DecodeRequest(prompt="The sky is blue because", adapter_dir=tiny_adapters["A"], max_new_tokens=8,
                             temperature=0, logprobs=0),
               DecodeRequest(messages=[{"role": "user", "content": "Name three colours."}],
                             adapter_dir=tiny_adapters["B"], max_new_tokens=8, temperature=0, logprobs=0)]
    alone = [invariant_engine.generate([t])[0] for t in targets]
    assert all(a.ok and a.completion_tokens > 0 for a in alone)
    want = [(a.text, a.completion_tokens, a.finish_reason, a.logprobs) for a in alone]
    shared = [(targets[:2], []), (targets[2:], fillers(1, adapters)),
              (targets, fillers(5, adapters)), (targets, fillers(13, adapters))]
    for chosen, others in shared:
        batch, positions = interleave(chosen, others)
        assert len(batch) in (2, 8, 16)
        results = invariant_engine.generate(batch)
        got = [(results[p].text, results[p].completion_tokens, results[p].finish_reason, results[p].logprobs)
               for p in positions]
        assert got == [want[targets.index(t)] for t in chosen], len(batch)



def test_log_probabilities_do_not_depend_on_the_batch(invariant_engine, tiny_adapters):  # noqa: F811
    """Echoed prompts (scored only, ``max_new_tokens`` 0) and generated tokens alike."""
    adapters = [None, tiny_adapters["A"]]
    targets = [DecodeRequest(prompt="The sky is blue because", max_new_tokens=0, echo=True, logprobs=2),
               DecodeRequest(prompt="Once upon a time", adapter_dir=tiny_adapters["A"], max_new_tokens=4,
                             temperature=0, echo=True, logprobs=1)]
    others = [DecodeRequest(prompt=p, adapter_dir=adapters[i % 2], max_new_tokens=0, echo=True, logprobs=1)
              for i, p in enumerate(FILLER)] + fillers(1, adapters)
    alone = [invariant_engine.generate([t])[0].logprobs for t in targets]
    batch, positions = interleave(targets, others)
    results = invariant_engine.generate(batch)
    assert [results[p].logprobs for p in positions] == alone

def test_invariant_engine_decodes_one_row_per_batch(invariant_engine):
    rows = [DecodeRow(i, DecodeRequest(prompt=p), [1] * (i + 1), "__base__") for i, p in enumerate(FILLER)]
    assert [len(b) for b in invariant_engine._buckets(rows)] == [1] * len(FILLER)


@pytest.mark.slow
def test_real_model_greedy_answers_alone_equal_those_in_a_mixed_batch(base_model_dir):
    """SmolLM2-135M at the default precision (bf16 where native): two prompts alone, then in a batch of 8."""
    from worker.ml.decoding.engine import InferenceEngine

    engine = InferenceEngine(base_model_dir, device="cpu", batch_invariant=True)
    targets = [DecodeRequest(messages=[{"role": "user", "content": "What is the capital of France?"}],
                             max_new_tokens=12, temperature=0),
               DecodeRequest(prompt="The three primary colours are", max_new_tokens=12, temperature=0)]
    alone = [engine.generate([t])[0].text for t in targets]
    batch, positions = interleave(targets, fillers(6, [None]))
    results = engine.generate(batch)
    assert [results[p].text for p in positions] == alone
