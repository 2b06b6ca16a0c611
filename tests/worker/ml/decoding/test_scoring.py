"""score_continuations on the tiny LLaMA (fp32): log-probs equal a direct HF forward pass of each pair."""
from __future__ import annotations

import pytest
import torch

from tests.worker.ml.decoding import engine_helpers as helpers
from tests.worker.ml.decoding.engine_helpers import reference_model
from worker.ml.decoding import scoring
from worker.ml.decoding.adapter_cache import BASE_ADAPTER
from worker.ml.decoding.scoring import ScoreItem, score_continuations

tiny_adapters, tiny_engine = helpers.tiny_adapters, helpers.tiny_engine  # shared fixtures

PAIRS = [("The capital of France is", " Paris, a city on the Seine."), ("Hi", " there"),
         ("1 2 3 4 5 6 7 8 9 10 11 12 13 14 15", " 16 17"), ("Write a poem about the sea.", "\n\nWaves")]


def _items(tok, adapters: dict, top_k: int = 0) -> list[ScoreItem]:
    return [ScoreItem(tok(ctx).input_ids, tok(cont, add_special_tokens=False).input_ids, name, top_k)
            for ctx, cont in PAIRS for name in adapters]


def _direct(model, item: ScoreItem) -> torch.Tensor:
    """Log-softmax rows of the continuation positions from one unpadded forward pass of the pair alone."""
    ids = torch.tensor([item.context_ids + item.continuation_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
    return logp[len(item.context_ids) - 1:]


def test_mixed_adapter_batch_equals_direct_forward(tiny_engine, tiny_adapters, tiny_llama_dir):
    loaded = tiny_engine.loaded
    dirs = {BASE_ADAPTER: None, **{loaded.adapter_name(d): d for d in tiny_adapters.values()}}
    items = _items(tiny_engine.tokenizer, dirs, top_k=3)
    results = score_continuations(loaded, items)
    models = {name: reference_model(tiny_llama_dir, d)[0] for name, d in dirs.items()}
    for item, res in zip(items, results):
        want = _direct(models[item.adapter], item)
        targets = torch.tensor(item.continuation_ids)
        assert res.token_logprobs == pytest.approx(want.gather(-1, targets[:, None])[:, 0].tolist(), abs=1e-4)
        assert res.is_greedy == bool((want.argmax(-1) == targets).all())
        top = torch.topk(want, 3, dim=-1)
        assert [[t for t, _ in pos] for pos in res.top_logprobs] == top.indices.tolist()
        assert [v for pos in res.top_logprobs for _, v in pos] == pytest.approx(top.values.flatten().tolist(), abs=1e-4)
    # the adapters really change the scores, and each row got its own one
    for i in range(0, len(results), len(dirs)):
        assert len({round(r.logprob, 3) for r in results[i:i + len(dirs)]}) == len(dirs)


def test_small_buckets_and_whole_model_logits_give_the_same_scores(tiny_engine, tiny_adapters, monkeypatch):
    loaded = tiny_engine.loaded
    items = _items(tiny_engine.tokenizer, {BASE_ADAPTER: None, loaded.adapter_name(tiny_adapters["B"]): None}, 2)
    one_pass = score_continuations(loaded, items)
    many = score_continuations(loaded, items, max_batch_tokens=16)
    monkeypatch.setattr(scoring, "_split_output_layer", lambda _: False)  # as for a model with soft-capped logits
    whole = score_continuations(loaded, items)
    for other in (many, whole):
        assert [lp for r in other for lp in r.token_logprobs] == pytest.approx(
            [lp for r in one_pass for lp in r.token_logprobs], abs=1e-5)
        assert [[t for pos in r.top_logprobs for t, _ in pos] for r in other] == \
            [[t for pos in r.top_logprobs for t, _ in pos] for r in one_pass]


def test_greedy_continuation_and_edge_items(tiny_engine):
    loaded = tiny_engine.loaded
    ctx = tiny_engine.tokenizer("Once upon a time").input_ids
    first = int(loaded.forward_left_padded([ctx], [BASE_ADAPTER])[0].logits[0, -1].argmax())
    res = score_continuations(loaded, [ScoreItem(ctx, [first]), ScoreItem(ctx, [(first + 1) % 100]),
                                       ScoreItem(ctx, [])])
    assert res[0].is_greedy and not res[1].is_greedy and res[0].logprob > res[1].logprob
    assert (res[2].token_logprobs, res[2].is_greedy) == ([], True)
    with pytest.raises(ValueError, match="item 0: empty context"):
        score_continuations(loaded, [ScoreItem([], [first])])
    with pytest.raises(ValueError, match="positions"):
        score_continuations(loaded, [ScoreItem(ctx * 400, [first])])
