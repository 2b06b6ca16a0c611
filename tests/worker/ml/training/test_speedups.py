"""Every speed technique keeps the learning the same: a tiny LLaMA trained at fp32 with the technique on
and off gives per-step losses and final adapter weights within 1e-4, for packed and unpacked batches,
with and without train_on_inputs."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from contracts.configs import FinetuneHyperparameters
from contracts.records import Example
from worker.ml.training.finetune import train_lora
from worker.ml.training.speedups import attention_implementation, compile_enabled, liger_enabled

TOLERANCE = 1e-4


def _examples(n: int = 12) -> list[Example]:
    colours = ["red", "green", "blue", "yellow", "purple", "orange"]
    return [Example(f"What colour is item {i}?", "" if i % 3 else f"Item {i} is in the box.",
                    f"Item {i} is {colours[i % 6]}. " * (1 + i % 4), line=i + 1) for i in range(n)]


def _hp(**overrides) -> FinetuneHyperparameters:
    base = {"batch_size": 4, "micro_batch_size": 2, "num_epochs": 1, "learning_rate": 1e-2, "warmup_steps": 1,
            "lora_dropout": 0.1, "val_set_size": 0, "precision": "fp32", "cutoff_len": 64,
            "lora_target_modules": ["q_proj", "v_proj", "gate_proj"]}
    return FinetuneHyperparameters(**{**base, **overrides})


_RUNS: dict[tuple, tuple[list[float], dict]] = {}


def _losses_and_adapter(model_dir: Path, out: Path, hp: FinetuneHyperparameters) -> tuple[list[float], dict]:
    """Per-step losses and final adapter weights of a run (cached per hyperparameters: baselines repeat)."""
    key = tuple(sorted(hp.model_dump(mode="json").items(), key=lambda kv: kv[0]))
    key = tuple((k, str(v)) for k, v in key)
    if key not in _RUNS:
        steps: list[dict] = []
        res = train_lora(base_model_dir=model_dir, train_examples=_examples(), val_examples=None, hp=hp,
                         out_dir=out, on_step=steps.append, device="cpu")
        assert res["status"] == "succeeded" and [s["step"] for s in steps] == list(range(1, res["steps"] + 1))
        _RUNS[key] = ([s["train_loss"] for s in steps], load_file(Path(res["adapter_dir"]) / "adapter_model.safetensors"))
    return _RUNS[key]


def _assert_same_learning(a: tuple[list[float], dict], b: tuple[list[float], dict]) -> None:
    (losses_a, weights_a), (losses_b, weights_b) = a, b
    assert len(losses_a) == len(losses_b) == 3
    assert max(abs(x - y) for x, y in zip(losses_a, losses_b)) < TOLERANCE
    assert set(weights_a) == set(weights_b)
    assert max((weights_a[k] - weights_b[k]).abs().max().item() for k in weights_a) < TOLERANCE
    assert losses_a[-1] < losses_a[0]  # it learned something, so the comparison is not of two idle runs


TECHNIQUES_OFF = {
    "fused_head_loss": {"fused_head_loss": False},
    "loss_chunk_tokens": {"loss_chunk_tokens": 16},  # many chunks instead of one
    "head_labelled_only": {"head_labelled_only": False},
    "attention_sdpa": {"attention": "eager"},
    "cpu_threads": {"cpu_threads": 1},
}


@pytest.mark.parametrize("train_on_inputs", [False, True], ids=["response-only", "train-on-inputs"])
@pytest.mark.parametrize("packing", [True, False], ids=["packed", "unpacked"])
@pytest.mark.parametrize("technique", sorted(TECHNIQUES_OFF))
def test_technique_off_learns_the_same(tiny_llama_dir, tmp_path, technique, packing, train_on_inputs):
    hp = _hp(packing=packing, train_on_inputs=train_on_inputs)
    threads = torch.get_num_threads()
    try:
        off = _losses_and_adapter(tiny_llama_dir, tmp_path / "off", hp.model_copy(update=TECHNIQUES_OFF[technique]))
    finally:
        torch.set_num_threads(threads)
    _assert_same_learning(_losses_and_adapter(tiny_llama_dir, tmp_path / "on", hp), off)


@pytest.mark.parametrize("train_on_inputs", [False, True], ids=["response-only", "train-on-inputs"])
def test_packing_learns_the_same_as_padded_micro_batches(tiny_llama_dir, tmp_path, train_on_inputs):
    """Same examples per step, block-diagonal attention: the same learning (no dropout: the dropout
    masks are drawn over differently shaped batches)."""
    hp = _hp(lora_dropout=0.0, train_on_inputs=train_on_inputs)
    _assert_same_learning(_losses_and_adapter(tiny_llama_dir, tmp_path / "packed", hp),
                          _losses_and_adapter(tiny_llama_dir, tmp_path / "plain", hp.model_copy(update={"packing": False})))


def test_compiled_decoder_layers_learn_the_same(tiny_llama_dir, tmp_path):
    """compile='on' on CPU (auto leaves it off there) against eager, packed, response-only loss."""
    hp = _hp(lora_dropout=0.0)
    _assert_same_learning(_losses_and_adapter(tiny_llama_dir, tmp_path / "eager", hp),
                          _losses_and_adapter(tiny_llama_dir, tmp_path / "compiled", hp.model_copy(update={"compile": "on"})))


def test_defaults_resolve_per_device():
    hp = FinetuneHyperparameters()
    assert (hp.packing, hp.fused_head_loss, hp.head_labelled_only) == (True, True, True)
    cpu = torch.device("cpu")
    assert attention_implementation(hp, cpu) == "sdpa"
    assert not compile_enabled(hp, cpu) and compile_enabled(hp, torch.device("cuda"))
    assert not liger_enabled(hp, cpu)  # Triton kernels: CUDA only, never required on CPU
    assert attention_implementation(hp.model_copy(update={"attention": "eager"}), cpu) == "eager"
