"""DPO over a PEFT LoRA model: an explicit loop read top-down (``train_dpo``: set up -> reference ->
resume -> train -> save), built from the supervised recipe's parts.

Shared with SFT: the base model loading and precision (``devices``), the LoRA wrapper and warm start
from a starting adapter (``lora``, ``hp.init_adapter``), AdamW + warmup/decay (``run_setup``), the step
plan (``data.plan_steps`` / ``plan_epoch``, counting pairs), the optimizer update (``train_step``), and
checkpoints / exact resume / the final adapter with its ``config.json`` (``run_artifacts``). Specific to
DPO: pairs instead of examples (``preference.data``), the reference log-probabilities computed once
(``preference.reference``), and the loss (``preference.loss``). Every optimizer step reports its loss,
the mean chosen / rejected rewards, the reward margin and the reward accuracy.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from contracts.configs import DpoHyperparameters
from contracts.preference_records import PreferencePair
from contracts.run_config import examples_sha256
from worker.ml.training import train_step
from worker.ml.training.checkpoints import capture_rng_state
from worker.ml.training.data import load_tokenizer, plan_epoch, plan_steps, split_train_val
from worker.ml.training.devices import choose_precision, load_base_for_training, resolve_device
from worker.ml.training.lora import build_lora_model
from worker.ml.training.preference.data import TokenizedPair, collate_pairs, tokenize_pairs
from worker.ml.training.preference.loss import dpo_loss, sequence_logprobs
from worker.ml.training.preference.reference import compute_reference_logprobs, load_or_compute_reference
from worker.ml.training.run_artifacts import (
    ADAPTER_DIR,
    resume_from_latest_checkpoint,
    save_final_adapter,
    save_run_checkpoint,
)
from worker.ml.training.run_setup import RunData, RunSources, TrainingRun, describe_run, setup_optimizer
from worker.ml.training.schedules import checkpoint_steps


@dataclass
class PreferenceRun:
    """A DPO run: the shared ``TrainingRun`` (model, optimizer, plan, progress) plus its pairs and reference."""

    run: TrainingRun
    pairs: list[TokenizedPair]
    reference: torch.Tensor  # (pairs, 2): reference log-probabilities of the chosen and rejected answers
    val_pairs: list[TokenizedPair] = field(default_factory=list)
    val_reference: torch.Tensor | None = None


@dataclass
class PreferenceWindow:
    """Sums over the pairs of the steps since the last log."""

    loss: float = 0.0
    chosen: float = 0.0
    rejected: float = 0.0
    correct: float = 0.0
    pairs: int = 0
    tokens: int = 0
    started: float = field(default_factory=time.perf_counter)

    def metrics(self) -> dict:
        n, elapsed = max(self.pairs, 1), max(time.perf_counter() - self.started, 1e-9)
        return {"train_loss": self.loss / n, "rewards_chosen": self.chosen / n, "rewards_rejected": self.rejected / n,
                "reward_margin": (self.chosen - self.rejected) / n, "reward_accuracy": self.correct / n,
                "tokens_per_s": round(self.tokens / elapsed, 2)}


def train_dpo(*, base_model_dir: Path, pairs: list[PreferencePair], hp: DpoHyperparameters, out_dir: Path,
              device: str = "auto", on_step: Callable[[dict], None] | None = None,
              on_checkpoint: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] | None = None,
              sources: RunSources | None = None, val_pairs: list[PreferencePair] | None = None) -> dict:
    """Train a LoRA adapter with DPO on ``pairs``; write checkpoints and ``out_dir/adapter``.

    Starts from ``hp.init_adapter`` when set (then that adapter is also the reference policy), else from
    fresh LoRA weights with the base model as reference. ``should_stop`` is polled before every
    micro-batch (cancel: the last finished step is checkpointed, status "cancelled"); a run folder
    with checkpoints is resumed exactly from the latest one. ``val_pairs=None`` splits ``hp.val_set_size``
    off ``pairs`` (seeded); validation DPO metrics come at eval steps, checkpoints and the last step.
    """
    if val_pairs is None:
        pairs, val_pairs = split_train_val(pairs, hp.val_set_size, hp.seed)
    prun = setup_dpo_run(base_model_dir=Path(base_model_dir), pairs=pairs, hp=hp, out_dir=Path(out_dir),
                         device=device, sources=sources or RunSources(), val_pairs=val_pairs)
    resume_from_latest_checkpoint(prun.run)
    status = train(prun, on_step, on_checkpoint, should_stop)
    if status == "succeeded":
        save_final_adapter(prun.run)
    return run_result(prun.run, status)


def setup_dpo_run(*, base_model_dir: Path, pairs: list[PreferencePair], hp: DpoHyperparameters, out_dir: Path,
                  device: str, sources: RunSources, val_pairs: list[PreferencePair] = ()) -> PreferenceRun:
    """Seed, tokenize and plan the pairs, build model + optimizer, then fix the reference log-probabilities."""
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    precision = choose_precision(hp.precision, resolve_device(device))
    torch.manual_seed(hp.seed)
    tokenizer = load_tokenizer(base_model_dir)
    tokenized = tokenize_pairs(pairs, tokenizer, hp)
    if not tokenized:
        raise ValueError(f"no preference pair has a response token in both answers within cutoff_len={hp.cutoff_len}")
    tokenized_val = tokenize_pairs(list(val_pairs), tokenizer, hp)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    plan = plan_steps(len(tokenized), hp.batch_size, hp.micro_batch_size, hp.num_epochs)
    data = RunData(train=[p.chosen for p in tokenized], val=[p.chosen for p in tokenized_val], pad_id=pad_id,
                   lengths=[p.n_tokens for p in tokenized], plan=plan,
                   save_at=set(checkpoint_steps(plan.total_steps, hp.save_steps, hp.n_checkpoints)),
                   train_examples_sha256=examples_sha256([ex for p in pairs
                                                          for ex in (p.chosen_example(), p.rejected_example())]))
    model = build_lora_model(load_base_for_training(base_model_dir, hp, precision), hp)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer, scheduler = setup_optimizer(params, hp, plan.total_steps)
    run = TrainingRun(hp=hp, out_dir=out_dir, precision=precision, data=data, model=model, params=params,
                      optimizer=optimizer, scheduler=scheduler,
                      scaler=torch.amp.GradScaler("cuda") if precision.use_grad_scaler else None,
                      head_weight=train_step.frozen_head_weight(model, precision),
                      config=describe_run(hp, base_model_dir, data, precision, sources).model_copy(
                          update={"method": "dpo", "dpo_beta": hp.beta}), started=started)
    fingerprint = {**data.fingerprint(hp), "n_val": len(tokenized_val), "reference": hp.init_adapter or "base"}
    reference = load_or_compute_reference(out_dir, fingerprint, lambda: compute_reference_logprobs(
        model, tokenized + tokenized_val, micro_batch_size=hp.micro_batch_size, pad_id=pad_id, precision=precision,
        head_weight=run.head_weight, adapter_off=hp.init_adapter is None))
    n = len(tokenized)
    return PreferenceRun(run=run, pairs=tokenized, reference=reference[:n], val_pairs=tokenized_val,
                         val_reference=reference[n:])


def train(prun: PreferenceRun, on_step: Callable[[dict], None] | None, on_checkpoint: Callable[[dict], None] | None,
          should_stop: Callable[[], bool] | None) -> str:
    """Optimizer steps until the plan is done ("succeeded") or ``should_stop`` says so ("cancelled")."""
    run, window = prun.run, PreferenceWindow()
    while run.step < run.data.plan.total_steps:
        micro_batches = micro_batches_of_next_step(run)
        boundary_rng = capture_rng_state()
        learning_rate = run.scheduler.get_last_lr()[0]
        step_pairs, step_tokens = sum(len(mb) for mb in micro_batches), 0
        for indices in micro_batches:
            if should_stop is not None and should_stop():
                run.optimizer.zero_grad(set_to_none=True)
                if run.step > 0 and run.step != run.last_saved:
                    save_run_checkpoint(run, run.step, boundary_rng, on_checkpoint)
                return "cancelled"
            step_tokens += pair_step(prun, indices, step_pairs, window)
        train_step.optimizer_step(run.optimizer, run.scheduler, run.scaler, run.params, run.hp.max_grad_norm)
        run.step += 1
        run.tokens += step_tokens
        window = log_step(prun, window, learning_rate, on_step)
        if run.step in run.data.save_at:
            save_run_checkpoint(run, run.step, capture_rng_state(), on_checkpoint)
            window.started = time.perf_counter()
    return "succeeded"


def micro_batches_of_next_step(run: TrainingRun) -> list[list[int]]:
    """Pair indices of each micro-batch of step ``run.step`` (the epoch's plan is made when it starts)."""
    hp, data = run.hp, run.data
    epoch, index = divmod(run.step, data.plan.steps_per_epoch)
    if run.epoch_plan[0] != epoch:
        run.epoch_plan = (epoch, plan_epoch(data.lengths, hp.batch_size, hp.micro_batch_size, hp.seed, epoch,
                                            hp.group_by_length))
    return run.epoch_plan[1][index]


def pair_step(prun: PreferenceRun, indices: list[int], step_pairs: int, window: PreferenceWindow) -> int:
    """Forward + backward of one micro-batch of pairs (its loss a share of the step's mean over pairs);
    returns its token count."""
    run = prun.run
    device = run.precision.device
    batch = collate_pairs([prun.pairs[i] for i in indices], run.data.pad_id)
    logps = sequence_logprobs(run.model, batch["input_ids"].to(device), batch["targets"].to(device),
                              autocast_dtype=run.precision.autocast_dtype, head_weight=run.head_weight)
    reference = prun.reference[indices].to(device)
    n = len(indices)
    terms = dpo_loss(logps[:n], logps[n:], reference[:, 0], reference[:, 1], run.hp.beta)
    loss = terms.losses.sum() / step_pairs
    (run.scaler.scale(loss) if run.scaler is not None else loss).backward()
    window.loss += float(terms.losses.detach().sum())
    window.chosen += float(terms.chosen_rewards.sum())
    window.rejected += float(terms.rejected_rewards.sum())
    window.correct += float(terms.correct.sum())
    window.pairs += n
    window.tokens += batch["n_tokens"]
    return batch["n_tokens"]


def log_step(prun: PreferenceRun, window: PreferenceWindow, learning_rate: float,
             on_step: Callable[[dict], None] | None) -> PreferenceWindow:
    """At logging, eval and last steps: report the window's DPO metrics (+ validation), start a new window."""
    run, hp = prun.run, prun.run.hp
    step, total = run.step, run.data.plan.total_steps
    is_eval = bool(prun.val_pairs) and ((hp.eval_steps and step % hp.eval_steps == 0) or step in run.data.save_at
                                        or step == total)
    if step % hp.logging_steps and not is_eval and step != total:
        return window
    run.metrics = {"step": step, "total_steps": total, **window.metrics(), "learning_rate": learning_rate,
                   "tokens": run.tokens, "epoch": step / run.data.plan.steps_per_epoch}
    if is_eval:
        run.metrics.update(validate(prun))
    if on_step:
        on_step(dict(run.metrics))
    return PreferenceWindow()


@torch.no_grad()
def validate(prun: PreferenceRun) -> dict:
    """DPO loss, reward margin and reward accuracy on the validation pairs (eval mode: no dropout)."""
    run = prun.run
    was_training = run.model.training
    run.model.eval()
    sums = PreferenceWindow()
    size = run.hp.micro_batch_size
    for start in range(0, len(prun.val_pairs), size):
        chunk = prun.val_pairs[start:start + size]
        batch = collate_pairs(chunk, run.data.pad_id)
        logps = sequence_logprobs(run.model, batch["input_ids"].to(run.precision.device),
                                  batch["targets"].to(run.precision.device),
                                  autocast_dtype=run.precision.autocast_dtype, head_weight=run.head_weight)
        reference = prun.val_reference[start:start + len(chunk)].to(run.precision.device)
        terms = dpo_loss(logps[:len(chunk)], logps[len(chunk):], reference[:, 0], reference[:, 1], run.hp.beta)
        sums.loss += float(terms.losses.sum())
        sums.chosen += float(terms.chosen_rewards.sum())
        sums.rejected += float(terms.rejected_rewards.sum())
        sums.correct += float(terms.correct.sum())
        sums.pairs += len(chunk)
    run.model.train(was_training)
    m = sums.metrics()
    return {"valid_loss": m["train_loss"], "valid_reward_margin": m["reward_margin"],
            "valid_reward_accuracy": m["reward_accuracy"]}


def run_result(run: TrainingRun, status: str) -> dict:
    """What the caller gets back: status, where the adapter is, progress, device, time, last metrics."""
    return {"status": status, "adapter_dir": str(run.out_dir / ADAPTER_DIR) if status == "succeeded" else None,
            "steps": run.step, "total_steps": run.data.plan.total_steps, "trained_tokens": run.tokens,
            "n_train": len(run.data.train), "n_val": len(run.data.val), "resumed_from_step": run.resumed_from, "method": "dpo",
            "device": str(run.precision.device), "precision": run.precision.name,
            "seconds": round(time.perf_counter() - run.started, 3), **run.metrics}
