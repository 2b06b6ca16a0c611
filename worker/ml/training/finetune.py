"""LoRA fine-tuning: an explicit PyTorch loop over a PEFT model, read top-down as a recipe
(``train_lora``: set up -> resume -> train -> save).

Same learning math as the Alpaca-LoRA / HF Trainer recipe (AdamW, warmup + linear decay, grad-norm
clipping, token-weighted loss over the whole optimizer step), with less waste. Each speed technique
is a switch of ``contracts.configs.FinetuneHyperparameters`` (default first), and none changes the
learning (tests/worker/ml/training/test_speedups.py):
``packing`` (on: each step's examples packed into rows with block-diagonal attention; off:
length-sorted right-padded micro-batches), ``fused_head_loss`` / ``loss_chunk_tokens`` /
``head_labelled_only`` (``loss.py``: head + cross-entropy in chunks, only where labels exist, the
gradient taken in the forward pass), ``attention`` / ``compile`` / ``liger_kernels`` / ``cpu_threads``
(``speedups.py``: SDPA or varlen FlashAttention, regional ``torch.compile`` and Liger kernels on CUDA,
CPU threads). Always on: frozen weights stored in the autocast dtype (bf16 base, fp32 LoRA weights),
and the host reads loss values only at logging steps.

Where the pieces live: ``run_setup`` (data plan, model, optimizer, the run's ``config.json``),
``train_step`` (micro-batches, forward/backward, optimizer update), ``run_artifacts`` (resume,
checkpoints, the final adapter). Resume is exact: if ``out_dir/checkpoints`` has a checkpoint the
run continues from the latest one (adapter, optimizer, scheduler, RNG; the data position is the
step number).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from contracts.configs import FinetuneHyperparameters
from contracts.records import Example
from worker.ml.training import train_step
from worker.ml.training.checkpoints import capture_rng_state
from worker.ml.training.data import plan_epoch
from worker.ml.training.loss import evaluate_loss
from worker.ml.training.run_artifacts import (
    ADAPTER_DIR,
    resume_from_latest_checkpoint,
    save_final_adapter,
    save_run_checkpoint,
)
from worker.ml.training.run_setup import RunSources, TrainingRun, setup_run
from worker.ml.training.train_step import MetricWindow


@dataclass
class RunHooks:
    """How the caller follows and steers a run: metrics at logging steps, checkpoints, cancellation."""

    on_step: Callable[[dict], None] | None = None
    on_checkpoint: Callable[[dict], None] | None = None
    should_stop: Callable[[], bool] | None = None


def train_lora(*, base_model_dir: Path, train_examples: list[Example], val_examples: list[Example] | None,
               hp: FinetuneHyperparameters, out_dir: Path, device: str = "auto",
               on_step: Callable[[dict], None] | None = None, on_checkpoint: Callable[[dict], None] | None = None,
               should_stop: Callable[[], bool] | None = None, sources: RunSources | None = None) -> dict:
    """Train a LoRA adapter; write checkpoints and ``out_dir/adapter``. See the module docstring.

    ``val_examples=None`` splits ``hp.val_set_size`` off ``train_examples`` (seeded); a list (even
    empty) is used as given. ``should_stop`` is polled before every micro-batch: when it returns
    True the partial step is dropped, a checkpoint of the last finished step is written (unless
    that step already has one, or no step finished) and the result has status "cancelled".
    ``sources`` (base model name, data files read) goes into every folder's ``config.json``.
    """
    run = setup_run(base_model_dir=base_model_dir, train_examples=train_examples, val_examples=val_examples,
                    hp=hp, out_dir=Path(out_dir), device=device, sources=sources or RunSources())
    resume_from_latest_checkpoint(run)
    status = train(run, RunHooks(on_step, on_checkpoint, should_stop))
    if status == "succeeded":
        save_final_adapter(run)
    return run_result(run, status)


def train(run: TrainingRun, hooks: RunHooks) -> str:
    """Optimizer steps until the plan is done ("succeeded") or ``should_stop`` says so ("cancelled")."""
    window = MetricWindow()
    while run.step < run.data.plan.total_steps:
        batches = micro_batches_of_next_step(run)
        boundary_rng = capture_rng_state()
        learning_rate = run.scheduler.get_last_lr()[0]
        step_sums = accumulate_step(run, batches, hooks.should_stop)
        if step_sums is None:
            cancel(run, boundary_rng, hooks.on_checkpoint)
            return "cancelled"
        train_step.optimizer_step(run.optimizer, run.scheduler, run.scaler, run.params, run.hp.max_grad_norm)
        run.step += 1
        run.tokens += step_sums.tokens
        window.add(step_sums.loss, step_sums.correct, step_sums.count, step_sums.tokens)
        window = log_step(run, window, learning_rate, hooks.on_step)
        if run.step in run.data.save_at:
            save_run_checkpoint(run, run.step, capture_rng_state(), hooks.on_checkpoint)
            window.started = time.perf_counter()
    return "succeeded"


def micro_batches_of_next_step(run: TrainingRun) -> list[dict]:
    """The collated micro-batches of step ``run.step`` (the epoch's plan is made when it starts)."""
    hp, data = run.hp, run.data
    epoch, index = divmod(run.step, data.plan.steps_per_epoch)
    if run.epoch_plan[0] != epoch:
        run.epoch_plan = (epoch, plan_epoch(data.lengths, hp.batch_size, hp.micro_batch_size, hp.seed, epoch,
                                            hp.group_by_length))
    return train_step.step_micro_batches(data.train, run.epoch_plan[1][index], data.lengths, hp, data.pad_id)


def accumulate_step(run: TrainingRun, batches: list[dict],
                    should_stop: Callable[[], bool] | None) -> MetricWindow | None:
    """Forward + backward every micro-batch of a step; None when asked to stop before one of them."""
    step_loss_count = sum(b["n_loss"] for b in batches)
    step_sums = MetricWindow()
    for batch in batches:
        if should_stop is not None and should_stop():
            return None
        sums = train_step.micro_step(run.model, batch, run.precision, run.head_weight, step_loss_count, run.scaler,
                                     run.hp)
        step_sums.add(sums.loss.detach(), sums.correct, sums.count, batch["n_tokens"])
    return step_sums


def cancel(run: TrainingRun, boundary_rng: dict, on_checkpoint: Callable[[dict], None] | None) -> None:
    """Drop the partial step; checkpoint the last finished one unless it has one or none finished."""
    run.optimizer.zero_grad(set_to_none=True)
    if run.step > 0 and run.step != run.last_saved:
        save_run_checkpoint(run, run.step, boundary_rng, on_checkpoint)


def log_step(run: TrainingRun, window: MetricWindow, learning_rate: float,
             on_step: Callable[[dict], None] | None) -> MetricWindow:
    """At logging, eval and last steps: report the window's metrics (+ validation) and start a new window."""
    hp, step, total = run.hp, run.step, run.data.plan.total_steps
    is_eval = bool(run.data.val) and ((hp.eval_steps and step % hp.eval_steps == 0) or step in run.data.save_at)
    if not (step % hp.logging_steps == 0 or is_eval or step == total):
        return window
    run.metrics = {"step": step, "total_steps": total, **window.metrics(), "learning_rate": learning_rate,
                   "tokens": run.tokens, "epoch": step / run.data.plan.steps_per_epoch}
    if is_eval:
        run.metrics.update(validate(run))
    if on_step:
        on_step(dict(run.metrics))
    return MetricWindow()


def validate(run: TrainingRun) -> dict:
    """Token-weighted loss and accuracy on the validation examples."""
    res = evaluate_loss(run.model, run.data.val, micro_batch_size=run.hp.micro_batch_size, pad_id=run.data.pad_id,
                        device=run.precision.device, autocast_dtype=run.precision.autocast_dtype,
                        head_weight=run.head_weight)
    return {"valid_loss": res["loss"], "valid_mean_token_accuracy": res["mean_token_accuracy"]}


def run_result(run: TrainingRun, status: str) -> dict:
    """What the caller gets back: status, where the adapter is, progress, device, time, last metrics."""
    return {"status": status, "adapter_dir": str(run.out_dir / ADAPTER_DIR) if status == "succeeded" else None,
            "steps": run.step, "total_steps": run.data.plan.total_steps, "trained_tokens": run.tokens,
            "n_train": len(run.data.train), "n_val": len(run.data.val), "resumed_from_step": run.resumed_from,
            "device": str(run.precision.device), "precision": run.precision.name,
            "seconds": round(time.perf_counter() - run.started, 3), **run.metrics}
