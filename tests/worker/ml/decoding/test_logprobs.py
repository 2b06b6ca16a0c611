"""Log-probabilities from the engine equal a direct HF forward pass (fp32), echo and generated tokens,
base model and adapters mixed in one batch; token prompts; token pieces."""
from __future__ import annotations

import pytest
import torch

from contracts.decoding import DecodeRequest, TokenLogprobs
from tests.worker.ml.decoding import engine_helpers as helpers
from tests.worker.ml.decoding.engine_helpers import reference_model
from worker.ml.decoding.logprobs import TokenPieces

tiny_adapters, tiny_engine = helpers.tiny_adapters, helpers.tiny_engine  # shared fixtures

PROMPTS = ["Hello there, how", "The capital of France is a city that", "Write", "1 2 3 4 5 6 7 8 9 10 11 12"]


def reference_logprobs(model, ids: list[int]) -> torch.Tensor:
    """log_softmax of one unpadded fp32 forward pass: row p is the distribution of token p + 1."""
    with torch.no_grad():
        return torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)


def assert_matches_reference(lp: TokenLogprobs, model, k: int, prompt_len: int):
    """Every returned token (echoed prompt, then generated) and its top-k against the reference."""
    ids = lp.token_ids
    ref = reference_logprobs(model, ids)
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] == []
    for p in range(1, len(ids)):
        expected = ref[p - 1]
        assert lp.token_logprobs[p] == pytest.approx(expected[ids[p]].item(), abs=1e-4)
        top = torch.topk(expected, k)
        assert [t for t, _ in lp.top_logprobs[p]] == top.indices.tolist()
        assert [v for _, v in lp.top_logprobs[p]] == pytest.approx(top.values.tolist(), abs=1e-4)
    assert len(ids) > prompt_len  # generated tokens were checked too


def test_echo_and_generated_logprobs_equal_a_forward_pass_with_mixed_adapters(tiny_engine, tiny_adapters,
                                                                             tiny_llama_dir):
    adapters = [None, tiny_adapters["A"], tiny_adapters["B"]]
    requests = [DecodeRequest(prompt=p, adapter_dir=a, max_new_tokens=6, logprobs=3, echo=True,
                              temperature=1.0 if i % 2 else 0.0, seed=i)
                for i, (p, a) in enumerate((p, a) for p in PROMPTS for a in adapters)]
    results = tiny_engine.generate(requests)
    models = {a: reference_model(tiny_llama_dir, a)[0] for a in adapters}
    for req, res in zip(requests, results):
        prompt_ids = tiny_engine.tokenizer(req.prompt).input_ids
        assert res.logprobs.token_ids[:len(prompt_ids)] == prompt_ids
        assert len(res.logprobs) == len(prompt_ids) + res.completion_tokens
        assert res.text.startswith(req.prompt)
        assert_matches_reference(res.logprobs, models[req.adapter_dir], 3, len(prompt_ids))
    # the adapters change the log-probabilities
    assert len({round(r.logprobs.token_logprobs[1], 5) for r in results[:3]}) == 3


def test_generated_logprobs_without_echo_and_offsets(tiny_engine, tiny_adapters, tiny_llama_dir):
    prompt = PROMPTS[0]
    req = DecodeRequest(prompt=prompt, adapter_dir=tiny_adapters["A"], max_new_tokens=5, logprobs=0)
    res = tiny_engine.generate([req])[0]
    prompt_ids = tiny_engine.tokenizer(prompt).input_ids
    lp = res.logprobs
    assert len(lp) == res.completion_tokens == 5 and all(top == [] for top in lp.top_logprobs)
    ref = reference_logprobs(reference_model(tiny_llama_dir, tiny_adapters["A"])[0], prompt_ids + lp.token_ids)
    for i, t in enumerate(lp.token_ids):
        assert lp.token_logprobs[i] == pytest.approx(ref[len(prompt_ids) + i - 1][t].item(), abs=1e-4)
    assert lp.text_offset[0] == len(prompt)
    assert "".join(lp.pieces[t].text for t in lp.token_ids) == res.text  # greedy text, no EOS in 5 steps


def test_scoring_only_with_max_tokens_zero_and_token_prompt(tiny_engine, tiny_llama_dir):
    ids = tiny_engine.tokenizer(PROMPTS[1]).input_ids
    res = tiny_engine.generate([DecodeRequest(prompt_ids=ids, max_new_tokens=0, echo=True, logprobs=1)])[0]
    assert (res.finish_reason, res.completion_tokens, res.prompt_tokens) == ("length", 0, len(ids))
    assert res.logprobs.token_ids == ids and res.text == PROMPTS[1]
    ref = reference_logprobs(reference_model(tiny_llama_dir, None)[0], ids)
    got = torch.tensor(res.logprobs.token_logprobs[1:])
    assert torch.allclose(got, ref[torch.arange(len(ids) - 1), torch.tensor(ids[1:])], atol=1e-4)
    assert res.logprobs.text_offset[0] == 0 and res.logprobs.text_offset[-1] == PROMPTS[1].rindex(" ")


def test_token_prompt_generates_like_its_text(tiny_engine):
    text = tiny_engine.generate([DecodeRequest(prompt=PROMPTS[2], max_new_tokens=6)])[0]
    ids = tiny_engine.tokenizer(PROMPTS[2]).input_ids
    by_ids = tiny_engine.generate([DecodeRequest(prompt_ids=ids, max_new_tokens=6)])[0]
    assert (by_ids.text, by_ids.prompt_tokens) == (text.text, text.prompt_tokens)
    bad = tiny_engine.generate([DecodeRequest(prompt_ids=[10**9], max_new_tokens=1)])[0]
    assert bad.error.startswith("invalid_prompt") and "vocabulary" in bad.error


def test_streamed_logprobs_add_up_to_the_result(tiny_engine):
    req = DecodeRequest(prompt=PROMPTS[3], max_new_tokens=8, logprobs=2, echo=True)
    parts: list[TokenLogprobs] = []
    texts: list[str] = []
    (res,) = tiny_engine.generate([req], on_delta=lambda i, t: texts.append(t),
                                  on_logprobs=lambda i, lp: parts.append(lp))
    assert [t for p in parts for t in p.token_ids] == res.logprobs.token_ids
    assert [v for p in parts for v in p.token_logprobs] == res.logprobs.token_logprobs
    assert "".join(texts) == res.text and texts[0] == PROMPTS[3]


def test_token_pieces_give_text_and_bytes(tiny_engine):
    pieces = TokenPieces(tiny_engine.tokenizer)
    ids = tiny_engine.tokenizer("Hello wörld 日本").input_ids
    got = [pieces(t) for t in ids]
    assert b"".join(bytes(p.bytes) for p in got).decode() == "Hello wörld 日本"
    partial = [p for p in got if p.text.startswith("bytes:")]
    assert partial and all(p.text == "bytes:" + "".join(f"\\x{b:02x}" for b in p.bytes) for p in partial)
    assert sum(pieces.chars(t) for t in ids) == len("Hello wörld 日本")


def test_beam_search_echoes_but_has_no_logprobs(tiny_engine):
    plain, echoed, scored = tiny_engine.generate([
        DecodeRequest(prompt=PROMPTS[0], num_beams=2, max_new_tokens=4),
        DecodeRequest(prompt=PROMPTS[0], num_beams=2, max_new_tokens=4, echo=True),
        DecodeRequest(prompt=PROMPTS[0], num_beams=2, max_new_tokens=4, logprobs=1)])
    assert echoed.text == PROMPTS[0] + plain.text and echoed.logprobs is None
    assert scored.error == "logprobs are not available with beam search"


def test_echo_prompts_are_scored_in_the_prefill_pass_or_apart_alike(tiny_engine, tiny_adapters, monkeypatch):
    from worker.ml.decoding import engine as engine_module
    from worker.ml.decoding import kv_prefill

    requests = [DecodeRequest(prompt=p, adapter_dir=a, max_new_tokens=3, logprobs=2, echo=True)
                for p in PROMPTS[:2] for a in (None, tiny_adapters["A"])]
    calls = []
    real = engine_module.prompt_logprobs
    monkeypatch.setattr(engine_module, "prompt_logprobs", lambda *a: calls.append(a) or real(*a))
    one_pass = tiny_engine.generate(requests)
    assert calls == []  # no second pass over the prompts
    monkeypatch.setattr(kv_prefill, "_score_prompts", lambda *a: {})  # as for a model that rescales its logits
    apart = tiny_engine.generate(requests)
    assert len(calls) == 1
    for a, b in zip(one_pass, apart):
        assert a.logprobs.token_ids == b.logprobs.token_ids and a.text == b.text
        assert a.logprobs.token_logprobs[1:] == pytest.approx(b.logprobs.token_logprobs[1:], abs=1e-4)
        assert [[t for t, _ in top] for top in a.logprobs.top_logprobs] == \
            [[t for t, _ in top] for top in b.logprobs.top_logprobs]
