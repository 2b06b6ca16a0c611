"""train_dpo on a tiny LLaMA: per-step DPO metrics, learning, checkpoints and the final PEFT adapter,
exact resume after a cancel, and the reference computed once per run folder."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from contracts.configs import DpoHyperparameters
from contracts.preference_records import PreferencePair
from contracts.run_config import read_run_config
from worker.ml.training.checkpoints import list_checkpoints
from worker.ml.training.preference.loop import train_dpo
from worker.ml.training.preference.reference import REFERENCE_FILE

METRIC_KEYS = {"step", "total_steps", "train_loss", "rewards_chosen", "rewards_rejected", "reward_margin",
               "reward_accuracy", "learning_rate", "tokens", "tokens_per_s", "epoch"}


def pairs(n: int = 8) -> list[PreferencePair]:
    colours = ["red", "green", "blue", "yellow"]
    return [PreferencePair(f"What colour is item {i}?", "", f"Item {i} is {colours[i % 4]}.",
                           f"No idea, maybe {i * 7} or so, who knows.", line=i + 1) for i in range(n)]


def hp(**overrides) -> DpoHyperparameters:
    base = {"batch_size": 4, "micro_batch_size": 2, "num_epochs": 3, "learning_rate": 2e-2, "warmup_steps": 0,
            "lora_dropout": 0.0, "beta": 0.5, "precision": "fp32", "n_checkpoints": 2}
    return DpoHyperparameters(**{**base, **overrides})


def run(model_dir: Path, out: Path, config: DpoHyperparameters, **kwargs) -> tuple[dict, list[dict]]:
    steps: list[dict] = []
    return train_dpo(base_model_dir=model_dir, pairs=pairs(), hp=config, out_dir=out, device="cpu",
                     on_step=steps.append, **kwargs), steps


def test_dpo_learns_reports_rewards_and_writes_a_peft_adapter(tiny_llama_dir, tmp_path):
    checkpoints: list[dict] = []
    res, steps = run(tiny_llama_dir, tmp_path, hp(), on_checkpoint=checkpoints.append)
    assert res["status"] == "succeeded" and res["steps"] == res["total_steps"] == 6 and res["method"] == "dpo"
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5, 6] and all(METRIC_KEYS <= set(s) for s in steps)
    # step 1 runs before any update: the fresh adapter (B = 0) is the base model, so policy == reference
    assert steps[0]["train_loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert steps[0]["rewards_chosen"] == pytest.approx(0, abs=1e-5) and steps[0]["reward_accuracy"] == 0
    for s in steps:
        assert s["reward_margin"] == pytest.approx(s["rewards_chosen"] - s["rewards_rejected"], abs=1e-6)
    assert steps[-1]["train_loss"] < 0.6 and steps[-1]["reward_accuracy"] > 0.5 and steps[-1]["reward_margin"] > 0
    assert [c["step"] for c in checkpoints] == [3, 6] and [p.name for p in list_checkpoints(tmp_path)] == [
        "step-3", "step-6"]
    adapter = Path(res["adapter_dir"])
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 8
    assert all("lora_" in k for k in load_file(adapter / "adapter_model.safetensors"))
    config = read_run_config(adapter)
    assert (config.method, config.dpo_beta, config.hyperparameters.learning_rate) == ("dpo", 0.5, 2e-2)
    assert (tmp_path / REFERENCE_FILE).is_file()


def test_resume_after_cancel_is_exact(tiny_llama_dir, tmp_path):
    config = hp(n_checkpoints=1, lora_dropout=0.1)  # dropout: the RNG state must be restored too
    whole, whole_steps = run(tiny_llama_dir, tmp_path / "whole", config)
    polls = iter(range(1000))
    cancelled, _ = run(tiny_llama_dir, tmp_path / "cut", config, should_stop=lambda: next(polls) >= 5)
    assert cancelled["status"] == "cancelled" and cancelled["steps"] == 2
    assert [p.name for p in list_checkpoints(tmp_path / "cut")] == ["step-2"]
    resumed, resumed_steps = run(tiny_llama_dir, tmp_path / "cut", config)
    assert resumed["status"] == "succeeded" and resumed["resumed_from_step"] == 2
    assert [s["step"] for s in resumed_steps] == [3, 4, 5, 6]
    assert resumed_steps[-1]["train_loss"] == pytest.approx(whole_steps[-1]["train_loss"], abs=1e-6)
    a = load_file(Path(whole["adapter_dir"]) / "adapter_model.safetensors")
    b = load_file(Path(resumed["adapter_dir"]) / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_validation_pairs_get_dpo_metrics_at_checkpoints_and_the_end(tiny_llama_dir, tmp_path):
    res, steps = run(tiny_llama_dir, tmp_path, hp(val_set_size=2))  # 2 of the 8 pairs held out (seeded)
    assert (res["n_train"], res["n_val"]) == (6, 2) and res["total_steps"] == 6  # 6 pairs, 4 a step, 3 epochs
    assert [s["step"] for s in steps if "valid_loss" in s] == [3, 6]
    for s in steps:
        if "valid_loss" in s:
            assert {"valid_reward_margin", "valid_reward_accuracy"} <= set(s) and 0 <= s["valid_reward_accuracy"] <= 1
    assert steps[-1]["valid_loss"] < math.log(2)  # the preference carries over to held-out pairs
