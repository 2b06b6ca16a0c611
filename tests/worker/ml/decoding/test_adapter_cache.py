"""AdapterCache: LRU by bytes, pinning, lorafleet.json templates, unreadable folders."""
from __future__ import annotations

import json

import pytest
import torch

from tests.worker.ml.decoding import engine_helpers as helpers
from worker.ml.decoding.adapter_cache import (
    AdapterCache,
    AdapterLoadError,
    read_adapter_template,
)

tiny_adapters = helpers.tiny_adapters  # shared fixture


@pytest.fixture
def base(tiny_llama_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)


def test_sizes_lru_order_and_pinning(base, tiny_adapters):
    a, b = tiny_adapters["A"], tiny_adapters["B"]
    cache = AdapterCache(base, capacity_bytes=10**9)
    ea, eb = cache.get(a), cache.get(b)
    # A: r=4 on q_proj (64->64) and v_proj (64->32) in 2 layers, fp32
    assert ea.nbytes == 2 * 4 * (64 * 4 + 4 * 64 + 64 * 4 + 4 * 32)
    assert eb.nbytes > ea.nbytes and cache.used_bytes == ea.nbytes + eb.nbytes
    assert cache.get(a) is ea and cache.loads == 2  # a hit, now most recently used
    cache.capacity_bytes = eb.nbytes
    cache.evict(pinned={ea.name})  # B is least recently used but A is pinned... B goes
    assert [e.name for e in cache.resident] == [ea.name]
    cache.capacity_bytes = 0
    cache.evict(pinned={ea.name})
    assert [e.name for e in cache.resident] == [ea.name]  # pinned survives even over capacity
    cache.evict(pinned=set())
    assert cache.resident == [] and cache.used_bytes == 0


def test_templates_and_errors(base, tiny_adapters, tmp_path):
    assert read_adapter_template(tiny_adapters["B"]) == "chat"
    assert read_adapter_template(tiny_adapters["A"]) is None
    (tmp_path / "lorafleet.json").write_text("{not json")
    assert read_adapter_template(tmp_path) is None
    (tmp_path / "lorafleet.json").write_text('{"base_model": "x", "prompt_template": "alpaca_short"}')
    assert read_adapter_template(tmp_path) == "alpaca_short"  # legacy file (config.json: tests/worker/ml/training)
    cache = AdapterCache(base, capacity_bytes=10**9)
    assert cache.get(tiny_adapters["B"]).prompt_template == "chat"
    with pytest.raises(AdapterLoadError):
        cache.get(tmp_path / "absent")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "target_modules": ["q_proj"]}))
    with pytest.raises(AdapterLoadError):
        cache.get(broken)


def test_a_bad_adapter_after_a_good_one_leaves_no_trace(base, tiny_adapters, tmp_path):
    cache = AdapterCache(base, capacity_bytes=10**9)
    good = cache.get(tiny_adapters["A"])
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in ("adapter_config.json", "adapter_model.safetensors"):
        (bad / f).write_bytes((tiny_adapters["B"] / f).read_bytes()[: 200 if f.endswith("safetensors") else None])
    with pytest.raises(AdapterLoadError):
        cache.get(bad)
    assert list(cache.peft_model.peft_config) == [good.name]
