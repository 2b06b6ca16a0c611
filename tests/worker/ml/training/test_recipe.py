"""The recipe's pieces one by one: seeded setup, one step by hand, stopping, logging decisions."""
from __future__ import annotations

import pytest
import torch

from contracts.configs import FinetuneHyperparameters
from contracts.records import Example
from worker.ml.training import finetune, train_step
from worker.ml.training.checkpoints import list_checkpoints
from worker.ml.training.run_setup import RunSources, TrainingRun, setup_run
from worker.ml.training.train_step import MetricWindow


def _examples(n: int = 16) -> list[Example]:
    return [Example(f"Count to {i}", "", " ".join(str(k) for k in range(i % 5 + 2)), line=i + 1) for i in range(n)]


def _hp(**overrides) -> FinetuneHyperparameters:
    base = {"batch_size": 8, "micro_batch_size": 4, "num_epochs": 1, "learning_rate": 1e-2, "warmup_steps": 0,
            "lora_dropout": 0.0, "precision": "fp32", "packing": False}  # the recipe by hand: examples per micro-batch
    return FinetuneHyperparameters(**{**base, **overrides})


def _setup(tiny_llama_dir, out, hp=None) -> TrainingRun:
    return setup_run(base_model_dir=tiny_llama_dir, train_examples=_examples(), val_examples=[], hp=hp or _hp(),
                     out_dir=out, device="cpu", sources=RunSources())


def _lora_weights(run: TrainingRun) -> list[torch.Tensor]:
    return [p.detach().clone() for p in run.params]


def test_setup_is_seeded_and_starts_at_step_zero(tiny_llama_dir, tmp_path):
    a, b = _setup(tiny_llama_dir, tmp_path / "a"), _setup(tiny_llama_dir, tmp_path / "b")
    assert all(torch.equal(x, y) for x, y in zip(_lora_weights(a), _lora_weights(b), strict=True))
    assert (a.step, a.tokens, a.resumed_from, a.metrics) == (0, 0, None, {})
    assert a.data.plan.total_steps == 2 and a.data.save_at == {2}
    assert a.data.fingerprint(a.hp) == b.data.fingerprint(b.hp)
    assert a.config.base_model.name == str(tiny_llama_dir) and a.config.data.files == []


def test_one_step_by_hand_is_the_first_step_of_train(tiny_llama_dir, tmp_path):
    run = _setup(tiny_llama_dir, tmp_path / "by-hand")
    batches = finetune.micro_batches_of_next_step(run)
    assert sum(len(b["input_ids"]) for b in batches) == run.hp.batch_size
    sums = finetune.accumulate_step(run, batches, should_stop=None)
    train_step.optimizer_step(run.optimizer, run.scheduler, run.scaler, run.params, run.hp.max_grad_norm)
    by_hand = float(sums.loss) / sums.count

    steps: list[dict] = []
    finetune.train_lora(base_model_dir=tiny_llama_dir, train_examples=_examples(), val_examples=[], hp=_hp(),
                        out_dir=tmp_path / "recipe", device="cpu", on_step=steps.append)
    assert steps[0]["train_loss"] == pytest.approx(by_hand, rel=1e-6)


def test_a_stop_before_a_micro_batch_drops_the_step_and_saves_nothing_at_step_zero(tiny_llama_dir, tmp_path):
    run = _setup(tiny_llama_dir, tmp_path)
    calls = iter([False, True])
    assert finetune.accumulate_step(run, finetune.micro_batches_of_next_step(run), lambda: next(calls)) is None
    saved: list[dict] = []
    finetune.cancel(run, {}, saved.append)
    assert all(p.grad is None for p in run.params)
    assert saved == [] and list_checkpoints(tmp_path) == []


def test_log_step_reports_only_at_logging_and_last_steps(tiny_llama_dir, tmp_path):
    run = _setup(tiny_llama_dir, tmp_path, _hp(logging_steps=2, num_epochs=3))
    window, reported = MetricWindow(), []
    window.add(torch.tensor(6.0), torch.tensor(2), 3, 30)
    run.step = 1
    assert finetune.log_step(run, window, 0.5, reported.append) is window and reported == []
    run.step, run.tokens = 2, 30
    fresh = finetune.log_step(run, window, 0.5, reported.append)
    assert fresh is not window and fresh.count == 0
    [metrics] = reported
    assert metrics["train_loss"] == 2.0 and metrics["learning_rate"] == 0.5 and metrics["tokens"] == 30
    assert metrics["epoch"] == 1.0 and run.metrics == metrics
    run.step = run.data.plan.total_steps  # the last step always reports (here: an odd step)
    fresh.add(torch.tensor(1.0), torch.tensor(1), 1, 10)
    assert finetune.log_step(run, fresh, 0.1, reported.append) is not fresh and len(reported) == 2


def test_run_result_names_the_adapter_only_when_succeeded(tiny_llama_dir, tmp_path):
    run = _setup(tiny_llama_dir, tmp_path)
    assert finetune.run_result(run, "cancelled")["adapter_dir"] is None
    done = finetune.run_result(run, "succeeded")
    assert done["adapter_dir"] == str(tmp_path / "adapter") and done["precision"] == "fp32"
    assert (done["steps"], done["total_steps"], done["n_train"], done["n_val"]) == (0, 2, 16, 0)
