"""Preflight: counts, truncation report, split and step plan, samples with the loss mask."""
from __future__ import annotations

import json
import os
import time

import pytest

from contracts.base_models import BUILTIN_MODELS, DEFAULT_BASE_MODEL
from contracts.configs import FinetuneHyperparameters
from contracts.memory_estimate import LOSS_CHUNK_TOKENS, estimate_job_memory
from contracts.model_shape import ModelShape
from contracts.records import Example, parse_training_file
from worker.ml.training import loss
from worker.ml.training.preflight import run_preflight, training_memory_estimate


def _examples(n: int, long_every: int = 0) -> list[Example]:
    out = []
    for i in range(1, n + 1):
        output = "word " * 300 if long_every and i % long_every == 0 else f"The answer is {i}."
        out.append(Example(f"Question number {i}?", "", output, line=i))
    return out


def test_counts_split_and_steps(base_model_dir):
    hp = FinetuneHyperparameters(batch_size=8, micro_batch_size=2, num_epochs=2, val_set_size=0.2, cutoff_len=64,
                                 packing=False)
    res = run_preflight(_examples(30, long_every=7), base_model_dir, hp)
    json.dumps(res)  # JSON-safe
    assert res["n_examples"] == 30 and (res["n_train"], res["n_val"]) == (24, 6)
    assert res["n_over_cutoff"] == 4 and res["over_cutoff_lines"] == [7, 14, 21, 28]
    assert res["max_tokens"] == 64
    assert (res["steps_per_epoch"], res["micro_batches_per_epoch"], res["estimated_steps"]) == (3, 12, 6)
    assert res["gradient_accumulation_steps"] == 4
    assert res["trainable_tokens"] < res["total_tokens"]
    assert res["n_untrainable"] == 0


def test_packing_counts_the_packed_forward_passes(base_model_dir):
    """Short examples pack several to a row: fewer micro-batches, the same optimizer steps."""
    hp = FinetuneHyperparameters(batch_size=8, micro_batch_size=2, num_epochs=2, cutoff_len=128)
    assert hp.packing  # the default
    packed = run_preflight(_examples(32), base_model_dir, hp)
    plain = run_preflight(_examples(32), base_model_dir, hp.model_copy(update={"packing": False}))
    assert packed["packing"] and not plain["packing"]
    assert packed["estimated_steps"] == plain["estimated_steps"] == 8
    assert plain["micro_batches_per_epoch"] == 16
    assert 0 < packed["micro_batches_per_epoch"] < plain["micro_batches_per_epoch"]
    assert packed["total_micro_batches"] == 2 * packed["micro_batches_per_epoch"]


def test_samples_show_masked_and_trained_text(base_model_dir):
    res = run_preflight(_examples(5), base_model_dir, FinetuneHyperparameters())
    assert len(res["samples"]) == 3
    s = res["samples"][0]
    assert s["line"] == 1
    assert s["masked_text"].endswith("### Instruction:\nQuestion number 1?\n\n### Response:\n")
    assert s["trained_text"] == "The answer is 1.<|im_end|>"
    assert s["n_masked_tokens"] + s["n_trained_tokens"] == s["n_tokens"]


def test_train_on_inputs_counts_all_tokens(base_model_dir):
    exs = _examples(4)
    masked = run_preflight(exs, base_model_dir, FinetuneHyperparameters())
    full = run_preflight(exs, base_model_dir, FinetuneHyperparameters(train_on_inputs=True))
    assert full["total_tokens"] == masked["total_tokens"]
    assert full["trainable_tokens"] == full["total_tokens"] - 4
    assert full["samples"][0]["masked_text"] == ""


def test_every_prompt_over_cutoff_is_reported_untrainable(base_model_dir):
    exs = [Example("explain " * 80, "", "ok", line=i) for i in range(1, 4)]
    res = run_preflight(exs, base_model_dir, FinetuneHyperparameters(cutoff_len=32))
    assert res["n_over_cutoff"] == 3 and res["n_untrainable"] == 3
    assert res["trainable_tokens"] == 0 and res["untrainable_lines"] == [1, 2, 3]


def test_the_report_carries_the_dispatchers_memory_estimate(base_model_dir):
    """The same function and shape as ``models.crud.resources.job_resources`` for the fine-tuning job."""
    hp = FinetuneHyperparameters(micro_batch_size=2, batch_size=8, cutoff_len=512, lora_r=16)
    res = run_preflight(_examples(5), base_model_dir, hp)
    est = res["memory_estimate"]
    json.dumps(est)
    params = {"hyperparameters": hp.model_dump(mode="json")}
    want = estimate_job_memory("fine_tuning", params, BUILTIN_MODELS[DEFAULT_BASE_MODEL].shape)
    assert (est["bytes"], est["devices"], est["breakdown"]) == (want.bytes, 1, want.breakdown)
    assert est["bytes"] == sum(est["breakdown"].values()) and est["gib"] == round(want.bytes / 2**30, 2)
    bigger = run_preflight(_examples(5), base_model_dir, hp.model_copy(update={"micro_batch_size": 8}))
    assert bigger["memory_estimate"]["bytes"] > est["bytes"]


def test_no_config_no_estimate(tmp_path):
    assert training_memory_estimate(tmp_path, FinetuneHyperparameters()) is None


def test_the_estimate_chunks_the_loss_like_the_training_loop():
    assert LOSS_CHUNK_TOKENS == loss.LOSS_CHUNK_TOKENS


@pytest.mark.slow
def test_full_alpaca_file_is_fast(base_model_dir, shared_data):
    parsed = parse_training_file((shared_data / "alpaca_data_en.json").read_bytes())
    start = time.perf_counter()
    res = run_preflight(parsed.records, base_model_dir, FinetuneHyperparameters(val_set_size=2000))
    assert time.perf_counter() - start < 60
    assert res["n_examples"] == len(parsed.records) > 50_000
    assert res["n_val"] == 2000 and res["estimated_steps"] == 3 * ((res["n_train"] + 127) // 128)
    assert 0 < res["n_over_cutoff"] < res["n_examples"] // 10


def test_time_estimate_uses_the_device_kinds_measured_rate(base_model_dir):
    """ETA = train tokens x epochs x 4 N / the device kind's rate; CPU scales with cores, GPUs by their peak."""
    from worker.ml.training.throughput import CPU_FLOPS_PER_CORE, training_flops_per_s

    hp = FinetuneHyperparameters(batch_size=8, micro_batch_size=2, num_epochs=2, val_set_size=0, cutoff_len=64)
    cpu = run_preflight(_examples(16), base_model_dir, hp, device_kind="cpu")["time_estimate"]
    gpu = run_preflight(_examples(16), base_model_dir, hp, device_kind="NVIDIA H200")["time_estimate"]
    total = run_preflight(_examples(16), base_model_dir, hp)["total_tokens"]
    n_params = ModelShape.from_hf_config(json.loads((base_model_dir / "config.json").read_text())).n_params
    rate, basis = training_flops_per_s("cpu")
    assert rate == pytest.approx(CPU_FLOPS_PER_CORE * (os.cpu_count() or 1)) and "measured" in basis
    assert cpu["estimated_seconds"] == pytest.approx(total * 2 * 4 * n_params / rate, rel=0.02)
    assert cpu["tokens_per_s"] * cpu["estimated_seconds"] == pytest.approx(total * 2, rel=0.01)
    assert gpu["device_kind"] == "NVIDIA H200" and gpu["estimated_seconds"] < cpu["estimated_seconds"] / 50
