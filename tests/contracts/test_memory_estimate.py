"""The memory estimate the dispatcher places jobs by (and the preflight shows): shapes, formulas, kinds."""
from __future__ import annotations

import json

import pytest

from contracts.base_models import BUILTIN_MODELS, DEFAULT_BASE_MODEL
from contracts.configs import FinetuneHyperparameters
from contracts.memory_estimate import (
    FALLBACK_BYTES,
    FP32_BYTES,
    GIB,
    OVERHEAD_BYTES,
    ModelShape,
    estimate_job_memory,
    finetune_memory,
)

LLAMA_7B_CONFIG = {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
                   "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32000,
                   "tie_word_embeddings": False, "max_position_embeddings": 4096}
MISTRAL_7B_CONFIG = {"model_type": "mistral", "hidden_size": 4096, "intermediate_size": 14336,
                     "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
                     "vocab_size": 32000, "tie_word_embeddings": False}
QWEN2_05B_CONFIG = {"model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
                    "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
                    "tie_word_embeddings": True}
# SmolLM2-135M-Instruct's config.json as the built-in model is converted (the fields that matter).
SMOLLM2_CONFIG = {"model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                  "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64, "vocab_size": 49152,
                  "tie_word_embeddings": True, "attention_bias": False}
LLAMA_7B = ModelShape.from_hf_config(LLAMA_7B_CONFIG)
SMOLLM2 = BUILTIN_MODELS[DEFAULT_BASE_MODEL].shape


def ft(shape: ModelShape = LLAMA_7B, **hp) -> int:
    return finetune_memory(FinetuneHyperparameters(**hp), shape).bytes


@pytest.mark.parametrize(("config", "published"), [
    (LLAMA_7B_CONFIG, 6.74e9),  # LLaMA-7B: 6,738,415,616
    (MISTRAL_7B_CONFIG, 7.24e9),  # Mistral-7B-v0.1: 7,241,732,096
    (QWEN2_05B_CONFIG, 0.494e9),  # Qwen2-0.5B: 494,032,768 (q/k/v biases, tied embeddings)
])
def test_params_counted_from_a_config_match_the_published_sizes(config, published):
    assert ModelShape.from_hf_config(config).n_params == pytest.approx(published, rel=0.02)


def test_a_config_that_gives_its_size_is_believed():
    assert ModelShape.from_hf_config({**LLAMA_7B_CONFIG, "num_parameters": 123}).n_params == 123


def test_the_builtin_model_has_its_real_shape():
    """134,515,008: the parameter count of the converted model (checked against the loaded model below)."""
    assert SMOLLM2 == ModelShape.from_hf_config(SMOLLM2_CONFIG)
    assert SMOLLM2.n_params == 134_515_008
    assert (SMOLLM2.n_kv_heads, SMOLLM2.head_dim_or_default, SMOLLM2.tie_word_embeddings) == (3, 64, True)


def test_the_builtin_shape_counts_the_real_model(base_model_dir):
    from transformers import AutoModelForCausalLM

    config = json.loads((base_model_dir / "config.json").read_text())
    assert ModelShape.from_hf_config(config) == SMOLLM2
    model = AutoModelForCausalLM.from_pretrained(base_model_dir)
    assert sum(p.numel() for p in model.parameters()) == SMOLLM2.n_params


def test_a_gguf_header_gives_the_same_shape():
    """The fields llama.cpp writes (read from the built-in model's GGUF); no output.weight: tied embeddings."""
    metadata = {"general.architecture": "llama", "llama.block_count": 30, "llama.embedding_length": 576,
                "llama.feed_forward_length": 1536, "llama.attention.head_count": 9,
                "llama.attention.head_count_kv": 3, "llama.vocab_size": 49152}
    shape = ModelShape.from_gguf_metadata(metadata, ["token_embd.weight", "blk.0.attn_q.weight"])
    assert shape.n_params == SMOLLM2.n_params and shape.tie_word_embeddings
    untied = ModelShape.from_gguf_metadata(metadata, ["token_embd.weight", "output.weight"])
    assert untied.n_params == SMOLLM2.n_params + 49152 * 576


def test_the_breakdown_adds_up_and_names_every_part():
    est = finetune_memory(FinetuneHyperparameters(), LLAMA_7B)
    assert set(est.breakdown) == {"weights", "lora_weights_grads_optimizer", "activations", "logits", "kv_cache",
                                  "overhead"}
    assert est.bytes == sum(est.breakdown.values()) and est.devices == 1
    assert est.breakdown["weights"] == LLAMA_7B.n_params * 2  # bf16 on a GPU by default
    # r=8 on q_proj and v_proj (4096 -> 4096 each) in 32 layers, 16 B per parameter (fp32 w, grad, 2 Adam moments)
    assert est.breakdown["lora_weights_grads_optimizer"] == 32 * 2 * 8 * (4096 + 4096) * 16
    assert est.breakdown["overhead"] == OVERHEAD_BYTES


def test_a_7b_lora_job_at_the_defaults_lands_in_a_plausible_range():
    """bf16 weights alone are 13.5 GB (12.6 GiB); micro-batch 4 x cutoff 256 = 1024 tokens keep ~38 B per
    hidden unit in each of 32 layers (~5 GB) without gradient checkpointing; plus ~0.4 GB for the chunked
    loss and 1 GiB of CUDA context. Alpaca-LoRA's 7B recipe needs more than a 16 GB card in bf16 and fits 24."""
    assert 14 * GIB < ft() < 24 * GIB
    assert ft(gradient_checkpointing=True) < ft() - 3 * GIB  # the activations mostly go


@pytest.mark.parametrize("knob", ["micro_batch_size", "cutoff_len", "lora_r"])
def test_more_tokens_or_a_higher_rank_cost_more(knob):
    values = {"micro_batch_size": (1, 4, 16), "cutoff_len": (128, 256, 2048), "lora_r": (4, 8, 64)}[knob]
    sizes = [ft(**({knob: v, "batch_size": 16} if knob == "micro_batch_size" else {knob: v})) for v in values]
    assert sizes[0] < sizes[1] < sizes[2]


def test_quantisation_and_precision_order_the_weights():
    def weights(**hp) -> int:
        return finetune_memory(FinetuneHyperparameters(**hp), LLAMA_7B).breakdown["weights"]

    four, eight, bf16, fp32 = (weights(load_in_4bit=True), weights(load_in_8bit=True), weights(precision="bf16"),
                               weights(precision="fp32"))
    assert four < eight < bf16 < fp32
    assert 3.5 * GIB < four < 4.5 * GIB  # NF4 decoder linears (~0.52 B/param) + fp32 embeddings and head
    assert fp32 == LLAMA_7B.n_params * FP32_BYTES
    assert weights(precision="fp16") == bf16


def test_more_target_modules_cost_more_and_a_trainable_head_keeps_its_logits():
    qv, every = ft(), ft(lora_target_modules="all-linear")
    assert qv < every
    with_head = finetune_memory(FinetuneHyperparameters(lora_target_modules=["q_proj", "lm_head"]), LLAMA_7B)
    without = finetune_memory(FinetuneHyperparameters(lora_target_modules=["q_proj"]), LLAMA_7B)
    # every position's fp32 log-softmax is kept: 1024 tokens x 32000 x 4 B more
    assert with_head.breakdown["logits"] - without.breakdown["logits"] == 1024 * 32000 * 4


def test_on_a_cpu_the_weights_are_fp32():
    est = estimate_job_memory("fine_tuning", {}, SMOLLM2, device_type="cpu")
    assert est.breakdown["weights"] == SMOLLM2.n_params * FP32_BYTES
    assert est.bytes > estimate_job_memory("fine_tuning", {}, SMOLLM2).bytes


def test_fine_tuning_params_are_read_like_the_stored_job():
    params = {"hyperparameters": {"micro_batch_size": 8, "batch_size": 64, "lora_r": 16}}
    assert estimate_job_memory("fine_tuning", params, LLAMA_7B).bytes == ft(micro_batch_size=8, batch_size=64,
                                                                           lora_r=16)
    assert estimate_job_memory("fine_tuning", {**params, "resources": {"devices": 2}}, LLAMA_7B).devices == 2


def test_inference_jobs_hold_weights_and_a_kv_cache():
    est = estimate_job_memory("batch", {"batch_size": 16, "precision": "auto"}, LLAMA_7B)
    assert est.breakdown["lora_weights_grads_optimizer"] == 0 and est.breakdown["weights"] == LLAMA_7B.n_params * 2
    # 16 rows x (512 assumed prompt + 256 new tokens) = 12288 positions x 32 layers x K and V x 4096 x 2 B
    assert est.breakdown["kv_cache"] == 12288 * 32 * 2 * 4096 * 2
    bigger = estimate_job_memory("batch", {"batch_size": 64}, LLAMA_7B)
    assert bigger.breakdown["kv_cache"] == 16384 * 32 * 2 * 4096 * 2  # the engine's bucket cap
    assert estimate_job_memory("batch", {"batch_size": 16, "precision": "fp32"}, LLAMA_7B).bytes > est.bytes


def test_eval_reads_its_sampling_and_grouped_query_heads_shrink_the_cache():
    short = estimate_job_memory("eval", {"batch_size": 4, "sampling": {"max_new_tokens": 64}}, LLAMA_7B)
    long = estimate_job_memory("eval", {"batch_size": 4, "sampling": {"max_new_tokens": 1024}}, LLAMA_7B)
    assert short.breakdown["kv_cache"] < long.breakdown["kv_cache"]
    gqa = ModelShape.from_hf_config({**LLAMA_7B_CONFIG, "num_key_value_heads": 8})
    assert estimate_job_memory("eval", {"batch_size": 4}, gqa).breakdown["kv_cache"] * 4 == \
        estimate_job_memory("eval", {"batch_size": 4}, LLAMA_7B).breakdown["kv_cache"]


def test_jobs_that_load_no_model_need_nothing():
    assert estimate_job_memory("preflight", {}, LLAMA_7B).bytes == 0  # a tokenizer only, on the io pool
    remote = {"config": {"teacher": {"model": "gpt-4o-mini"}}}
    assert estimate_job_memory("generation", remote, None).bytes == 0
    local = {"config": {"method": "alpaca", "teacher": {"model": "x", "local": True}}}
    est = estimate_job_memory("generation", local, SMOLLM2)
    assert est.breakdown["weights"] == SMOLLM2.n_params * 2 and est.breakdown["kv_cache"] > 0


def test_export_loads_the_base_in_fp32():
    est = estimate_job_memory("export", {"adapter_id": "a"}, LLAMA_7B)
    assert est.breakdown == {"weights": LLAMA_7B.n_params * FP32_BYTES, "overhead": OVERHEAD_BYTES}


def test_an_unknown_shape_falls_back_to_a_constant_and_says_so():
    est = estimate_job_memory("fine_tuning", {}, None)
    assert est.breakdown == {"fallback": FALLBACK_BYTES["fine_tuning"]} and est.bytes == FALLBACK_BYTES["fine_tuning"]
    assert "unknown" in est.note
    assert estimate_job_memory("batch", {}, None).bytes == FALLBACK_BYTES["batch"]


def test_a_dpo_job_is_estimated_with_two_sequences_per_pair():
    from contracts.memory_estimate import estimate_job_memory
    from contracts.model_shape import ModelShape

    shape = ModelShape(n_params=135_000_000, hidden_size=576, intermediate_size=1536, n_layers=30, n_heads=9,
                       n_kv_heads=3, vocab_size=49152)
    hp = {"micro_batch_size": 2, "batch_size": 4, "beta": 0.1}
    dpo = estimate_job_memory("fine_tuning", {"method": "dpo", "hyperparameters": hp}, shape, device_type="cuda")
    sft = estimate_job_memory("fine_tuning", {"hyperparameters": {**{k: v for k, v in hp.items() if k != "beta"},
                                                                    "micro_batch_size": 4}}, shape, device_type="cuda")
    assert dpo.bytes == sft.bytes > 0
