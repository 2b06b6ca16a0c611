"""The CUDA paths of the ML core on the real base model (skipped without a GPU; `pytest -m gpu` in
bench/gpu_check.sh): bf16 training packed and unpacked, gradient checkpointing, 8-bit/4-bit loading,
and the inference engine on CUDA agreeing with CPU fp32 under greedy decoding."""
from __future__ import annotations

import importlib.util

import pytest
import torch

from contracts.configs import FinetuneHyperparameters
from contracts.decoding import DecodeRequest
from contracts.records import Example
from worker.ml.training.finetune import train_lora

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _examples(n: int = 32) -> list[Example]:
    return [Example(f"What is the code of locker {i}?", "" if i % 2 else f"Locker {i} is on floor {i % 5}.",
                    f"The code of locker {i} is {i * 37 % 1000:03d}." * (1 + i % 3), line=i + 1) for i in range(n)]


def _hp(**kw) -> FinetuneHyperparameters:
    return FinetuneHyperparameters(**{"batch_size": 16, "micro_batch_size": 8, "num_epochs": 2, "learning_rate": 3e-3,
                                      "warmup_steps": 1, "lora_dropout": 0.0, "precision": "bf16", **kw})


def _train(base_model_dir, out, hp):
    steps: list[dict] = []
    res = train_lora(base_model_dir=base_model_dir, train_examples=_examples(), val_examples=[], hp=hp, out_dir=out,
                     device="cuda", on_step=steps.append)
    assert res["status"] == "succeeded" and res["device"].startswith("cuda"), res
    return res, [s["train_loss"] for s in steps]


def test_bf16_training_packed_and_unpacked_agree(base_model_dir, tmp_path):
    plain, plain_losses = _train(base_model_dir, tmp_path / "plain", _hp())
    packed, packed_losses = _train(base_model_dir, tmp_path / "packed", _hp(packing=True))
    assert plain["precision"] == "bf16" and packed["trained_tokens"] == plain["trained_tokens"]
    assert packed_losses == pytest.approx(plain_losses, rel=3e-2)
    assert plain_losses[-1] < plain_losses[0]


def test_gradient_checkpointing_gives_the_same_losses(base_model_dir, tmp_path):
    _, plain = _train(base_model_dir, tmp_path / "plain", _hp(num_epochs=1))
    _, ckpt = _train(base_model_dir, tmp_path / "ckpt", _hp(num_epochs=1, gradient_checkpointing=True))
    assert ckpt == pytest.approx(plain, rel=3e-2)


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="needs bitsandbytes")
@pytest.mark.parametrize("bits", ["load_in_8bit", "load_in_4bit"])
def test_quantized_base_trains(base_model_dir, tmp_path, bits):
    res, losses = _train(base_model_dir, tmp_path, _hp(num_epochs=2, **{bits: True}))
    assert losses[-1] < losses[0] and res["trained_tokens"] > 0


def test_engine_on_cuda_matches_cpu_fp32_greedy(base_model_dir):
    from worker.ml.decoding.engine import InferenceEngine

    torch.backends.cuda.matmul.allow_tf32 = False
    prompts = ["Name three colours.", "What is the capital of France?", "Write a haiku about rain.",
               "Explain photosynthesis in one sentence."]
    requests = [DecodeRequest(messages=[{"role": "user", "content": p}], max_new_tokens=24) for p in prompts]
    cuda = [r.text for r in InferenceEngine(base_model_dir, device="cuda", dtype="float32").generate(requests)]
    cpu = [r.text for r in InferenceEngine(base_model_dir, device="cpu", dtype="float32").generate(requests)]
    assert sum(a == b for a, b in zip(cuda, cpu)) >= len(prompts) - 1, (cuda, cpu)
