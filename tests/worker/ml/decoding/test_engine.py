"""InferenceEngine on a tiny random LLaMA with random LoRA adapters (fp32, CPU)."""
from __future__ import annotations

import pytest
import torch

from contracts.decoding import DecodeRequest
from contracts.prompts import render_prompt
from tests.worker.ml.decoding import engine_helpers as helpers
from tests.worker.ml.decoding.engine_helpers import reference_generate, reference_model
from worker.ml.decoding.engine import InferenceEngine
from worker.ml.decoding.loaded_model import resolve_dtype

tiny_adapters, tiny_engine = helpers.tiny_adapters, helpers.tiny_engine  # shared fixtures

PROMPTS = ["Hello there, how", "The capital of France is a city that", "Write", "1 2 3 4 5 6 7 8 9 10 11 12"]


def test_mixed_adapter_batch_matches_each_model_alone(tiny_engine, tiny_adapters, tiny_llama_dir):
    adapters = [None, tiny_adapters["A"], tiny_adapters["B"]]
    requests = [DecodeRequest(prompt=p, adapter_dir=a, max_new_tokens=10) for p in PROMPTS for a in adapters]
    results = tiny_engine.generate(requests)
    texts = [r.text for r in results]
    models = {a: reference_model(tiny_llama_dir, a) for a in adapters}
    for req, res in zip(requests, results):
        assert res.text == reference_generate(tiny_llama_dir, req.adapter_dir, req.prompt, 10, models[req.adapter_dir])
        assert res.finish_reason == "length" and res.completion_tokens == 10
        assert res.prompt_tokens == len(tiny_engine.tokenizer(req.prompt).input_ids)
    # the adapters really change the output, and each row got its own one
    for i in range(0, len(texts), 3):
        assert len({texts[i], texts[i + 1], texts[i + 2]}) == 3


def test_adapters_are_loaded_once_and_cached(tiny_llama_dir, tiny_adapters):
    engine = InferenceEngine(tiny_llama_dir, device="cpu", dtype="float32")
    req = [DecodeRequest(prompt="Hi", adapter_dir=tiny_adapters["A"], max_new_tokens=2)]
    engine.generate(req)
    engine.generate(req * 3)
    assert engine.adapters.loads == 1


def test_lru_eviction_by_bytes_keeps_results_right(tiny_llama_dir, tiny_adapters):
    engine = InferenceEngine(tiny_llama_dir, device="cpu", dtype="float32", adapter_cache_bytes=1)
    a, b = tiny_adapters["A"], tiny_adapters["B"]
    first = engine.generate([DecodeRequest(prompt="Hi", adapter_dir=a, max_new_tokens=6)])[0].text
    engine.generate([DecodeRequest(prompt="Hi", adapter_dir=b, max_new_tokens=6)])
    assert [e.path for e in engine.adapters.resident] == [b.resolve()]  # A evicted: over capacity
    assert engine.generate([DecodeRequest(prompt="Hi", adapter_dir=a, max_new_tokens=6)])[0].text == first
    assert engine.adapters.loads == 3
    # both needed by one batch: both stay resident while it runs (pinned), correct outputs
    both = engine.generate([DecodeRequest(prompt="Hi", adapter_dir=x, max_new_tokens=6) for x in (a, b)])
    assert both[0].text == first


def test_stop_sequence_truncates_and_reports_stop(tiny_engine):
    full = tiny_engine.generate([DecodeRequest(prompt=PROMPTS[1], max_new_tokens=12)])[0]
    stop = full.text[len(full.text) // 2: len(full.text) // 2 + 3]
    res = tiny_engine.generate([DecodeRequest(prompt=PROMPTS[1], max_new_tokens=12, stop=[stop])])[0]
    assert res.finish_reason == "stop"
    assert res.text == full.text[:full.text.index(stop)]
    assert res.completion_tokens < 12


def test_eos_ends_a_row_with_stop(tiny_engine, monkeypatch):
    first = tiny_engine.tokenizer(tiny_engine.generate([DecodeRequest(prompt="Write", max_new_tokens=1)])[0].text,
                                  add_special_tokens=False).input_ids[0]
    monkeypatch.setattr(tiny_engine.loaded, "eos_ids", {first})
    res = tiny_engine.generate([DecodeRequest(prompt="Write", max_new_tokens=8)])[0]
    assert (res.text, res.finish_reason, res.completion_tokens) == ("", "stop", 1)


def test_sampling_really_samples_and_seed_reproduces(tiny_engine):
    def run(**kw):
        return tiny_engine.generate([DecodeRequest(prompt="Hello", max_new_tokens=12, **kw)])[0].text

    greedy = run()
    assert run(temperature=0.0, top_p=0.5, top_k=3) == greedy  # temperature 0 is greedy
    assert run(temperature=1.0, top_k=1) == greedy  # top-1 sampling is greedy
    s1, s1_again, s2 = run(temperature=1.5, seed=1), run(temperature=1.5, seed=1), run(temperature=1.5, seed=2)
    assert s1 == s1_again and s1 != s2 and s1 != greedy
    # a seeded row gives the same text whoever shares its batch
    batch = tiny_engine.generate([DecodeRequest(prompt=p, max_new_tokens=12, temperature=1.5, seed=1)
                                  for p in ["Hello", "The capital of France is"]])
    assert batch[0].text == s1


def test_beam_search_matches_hf_generate(tiny_engine, tiny_adapters, tiny_llama_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    res = tiny_engine.generate([DecodeRequest(prompt=p, adapter_dir=tiny_adapters["A"], max_new_tokens=8,
                                                  num_beams=3) for p in PROMPTS[:2]])
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), str(tiny_adapters["A"]))
    tok = tiny_engine.tokenizer
    for p, r in zip(PROMPTS[:2], res):
        ids = tok(p, return_tensors="pt").input_ids
        with torch.no_grad():
            out = model.eval().generate(input_ids=ids, num_beams=3, do_sample=False, max_new_tokens=8,
                                        pad_token_id=tok.eos_token_id)
        assert r.text == tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def test_stream_yields_deltas_that_add_up(tiny_engine, tiny_adapters):
    req = DecodeRequest(prompt="Hello", adapter_dir=tiny_adapters["B"], max_new_tokens=10)
    stream = tiny_engine.stream(req)
    parts = list(stream)
    assert len(parts) > 1
    assert "".join(parts) == stream.result.text == tiny_engine.generate([req])[0].text
    seen = []
    tiny_engine.generate([req, req], on_delta=lambda i, t: seen.append((i, t)))
    assert "".join(t for i, t in seen if i == 1) == stream.result.text


def test_bad_rows_fail_alone(tiny_engine, tmp_path):
    results = tiny_engine.generate([
        DecodeRequest(prompt="Hi", adapter_dir=tmp_path / "missing", max_new_tokens=3),
        DecodeRequest(prompt="word " * 1100, max_new_tokens=3),
        DecodeRequest(prompt="Hi", max_new_tokens=3),
    ])
    assert results[0].error and "adapter_config.json" in results[0].error
    assert results[1].error.startswith("context_length_exceeded")
    assert results[2].ok and results[2].completion_tokens == 3


def test_chat_rendering_follows_the_adapter_template(tiny_engine, tiny_adapters):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]
    tok = tiny_engine.tokenizer
    alpaca = tiny_engine.encode(DecodeRequest(messages=messages, adapter_dir=tiny_adapters["A"]))
    assert alpaca == tok(render_prompt("Name a colour.", "Be brief.")).input_ids
    chat_text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    chat_ids = tok(chat_text, add_special_tokens=False).input_ids
    assert tiny_engine.encode(DecodeRequest(messages=messages, adapter_dir=tiny_adapters["B"])) == chat_ids
    assert tiny_engine.encode(DecodeRequest(messages=messages)) == chat_ids  # base: chat template
    forced = DecodeRequest(messages=messages, adapter_dir=tiny_adapters["B"], prompt_template="alpaca_short")
    assert tiny_engine.encode(forced) == tok(render_prompt("Name a colour.", "Be brief.", "alpaca_short")).input_ids


def test_dtype_resolution():
    cpu = torch.device("cpu")
    assert resolve_dtype("float32", cpu) is torch.float32
    assert resolve_dtype("bf16", cpu) is torch.bfloat16
    assert resolve_dtype("auto", cpu) in (torch.bfloat16, torch.float32)
    with pytest.raises(ValueError):
        resolve_dtype("int3", cpu)


def test_rows_are_reported_as_they_finish_and_can_be_cancelled(tiny_engine):
    events = []
    requests = [DecodeRequest(prompt="Hi", max_new_tokens=2), DecodeRequest(prompt="Hello", max_new_tokens=9),
                DecodeRequest(prompt="Hey there", max_new_tokens=9)]
    results = tiny_engine.generate(requests, on_delta=lambda i, t: events.append(("delta", i)),
                                   on_result=lambda i, r: events.append(("done", i)),
                                   is_cancelled=lambda i: i == 2 and ("delta", 2) in events)
    first_done = events.index(("done", 0))
    assert ("delta", 1) in events[first_done:]  # row 1 still decoding after row 0 was answered
    assert results[0].completion_tokens == 2 and results[1].completion_tokens == 9
    assert results[2].finish_reason == "stop" and results[2].completion_tokens < 9
    assert sorted(e for e in events if e[0] == "done") == [("done", 0), ("done", 1), ("done", 2)]


def test_buckets_are_length_sorted_and_bounded(tiny_llama_dir):
    engine = InferenceEngine(tiny_llama_dir, device="cpu", dtype="float32", max_batch_size=3, max_batch_tokens=200)
    prompts = ["word " * n for n in (30, 2, 9, 5, 17, 1, 3)]
    requests = [DecodeRequest(prompt=p, max_new_tokens=4) for p in prompts]
    rows = engine._prepare(requests, [None] * len(requests))
    buckets = [[len(r.prompt_ids) for r in b] for b in engine._buckets(rows)]
    flat = [n for b in buckets for n in b]
    assert flat == sorted(flat) and all(len(b) <= 3 for b in buckets)
    assert all((max(b) + 4) * len(b) <= 200 or len(b) == 1 for b in buckets)
    results = engine.generate(requests)  # several buckets, same answers as one at a time
    assert [r.text for r in results] == [engine.generate([q])[0].text for q in requests]


def test_grouped_prefill_with_merged_caches_matches_reference(tiny_llama_dir, tiny_adapters):
    engine = InferenceEngine(tiny_llama_dir, device="cpu", dtype="float32")
    engine.prefill_group_min_tokens = 4  # split prompts of different lengths into several prefills
    prompts = ["Hi", "Hello there", "word " * 40, "The capital of France is a city that " * 6]
    adapters = [None, tiny_adapters["A"], tiny_adapters["B"], tiny_adapters["A"]]
    requests = [DecodeRequest(prompt=p, adapter_dir=a, max_new_tokens=8) for p, a in zip(prompts, adapters)]
    rows = engine._prepare(requests, [None] * 4)
    from worker.ml.decoding.kv_prefill import prefill_groups

    assert len(prefill_groups(sorted(rows, key=lambda r: len(r.prompt_ids)), 4)) > 1
    results = engine.generate(requests)
    models = {a: reference_model(tiny_llama_dir, a) for a in set(adapters)}
    for req, res in zip(requests, results):
        assert res.text == reference_generate(tiny_llama_dir, req.adapter_dir, req.prompt, 8, models[req.adapter_dir])
