"""LoRA fine-tuning: an explicit PyTorch loop over a PEFT model (setup -> loop -> save).

Same learning math as the Alpaca-LoRA / HF Trainer recipe (AdamW, warmup + linear decay, grad-norm
clipping, token-weighted loss over the whole optimizer step), with less waste: examples of a step
are length-sorted into right-padded micro-batches (no attention mask needed) or, with ``packing``,
packed several to a row with block-diagonal attention; the output head and
loss run only where labels exist, frozen weights are stored in the autocast dtype, and the host
reads loss values only at logging steps.

Resume is exact: if ``out_dir/checkpoints`` has a checkpoint the run continues from the latest one
(adapter, optimizer, scheduler, RNG; the data position is the step number).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from contracts.configs import FinetuneHyperparameters
from contracts.records import Example
from worker.ml.training.checkpoints import (
    capture_rng_state,
    latest_checkpoint,
    load_checkpoint,
    remove_stale_temp_dirs,
    save_checkpoint,
)
from worker.ml.training.data import (
    TokenizedExample,
    collate_micro_batch,
    collate_packed_micro_batch,
    load_tokenizer,
    pack_step,
    plan_epoch,
    plan_steps,
    split_train_val,
    tokenize_examples,
)
from worker.ml.training.devices import (
    TrainPrecision,
    choose_precision,
    load_base_for_training,
    resolve_device,
)
from worker.ml.training.lora import build_lora_model, save_adapter, verify_adapter_files
from worker.ml.training.loss import causal_lm_loss_sums, evaluate_loss, target_positions
from worker.ml.training.schedules import checkpoint_steps, effective_warmup_steps, lr_factor

ADAPTER_DIR = "adapter"
PROBE_TOKENS = 64


@dataclass
class _Window:
    """Sums over the optimizer steps since the last log (tensors: no host sync until read)."""

    loss: Any = 0.0
    correct: Any = 0
    count: int = 0
    tokens: int = 0
    started: float = field(default_factory=time.perf_counter)

    def add(self, loss: torch.Tensor, correct: torch.Tensor, count: int, tokens: int) -> None:
        self.loss, self.correct = self.loss + loss, self.correct + correct
        self.count, self.tokens = self.count + count, self.tokens + tokens

    def metrics(self) -> dict:
        """Token-weighted loss and accuracy of the window, and its token rate (reads the tensors)."""
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        return {"train_loss": float(self.loss) / self.count, "train_mean_token_accuracy": float(self.correct) / self.count,
                "tokens_per_s": round(self.tokens / elapsed, 2)}


def prepare_examples(examples: list[Example], tokenizer: Any, hp: FinetuneHyperparameters) -> list[TokenizedExample]:
    """Tokenize with the job's template and mask; drop examples with nothing to learn from."""
    tokenized = tokenize_examples(examples, tokenizer, cutoff_len=hp.cutoff_len,
                                  train_on_inputs=hp.train_on_inputs, template=hp.prompt_template)
    return [t for t in tokenized if t.n_loss_tokens > 0]


def train_lora(
    *,
    base_model_dir: Path,
    train_examples: list[Example],
    val_examples: list[Example] | None,
    hp: FinetuneHyperparameters,
    out_dir: Path,
    device: str = "auto",
    on_step: Callable[[dict], None] | None = None,
    on_checkpoint: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict:
    """Train a LoRA adapter; write checkpoints and ``out_dir/adapter``. See the module docstring.

    ``val_examples=None`` splits ``hp.val_set_size`` off ``train_examples`` (seeded); a list (even
    empty) is used as given. ``should_stop`` is polled before every micro-batch: when it returns
    True the partial step is dropped, a checkpoint of the last finished step is written (unless
    that step already has one, or no step finished) and the result has status "cancelled".
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    precision = choose_precision(hp.precision, resolve_device(device))
    torch.manual_seed(hp.seed)

    # --- data
    tokenizer = load_tokenizer(base_model_dir)
    if val_examples is None:
        train_examples, val_examples = split_train_val(train_examples, hp.val_set_size, hp.seed)
    train = prepare_examples(train_examples, tokenizer, hp)
    val = prepare_examples(val_examples, tokenizer, hp)
    if not train:
        raise ValueError(f"no training example has a token to learn from within cutoff_len={hp.cutoff_len}")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    plan = plan_steps(len(train), hp.batch_size, hp.micro_batch_size, hp.num_epochs)
    lengths = [len(t.input_ids) for t in train]
    save_at = set(checkpoint_steps(plan.total_steps, hp.save_steps, hp.n_checkpoints))
    fingerprint = {"n_train": len(train), "train_tokens": sum(lengths), "total_steps": plan.total_steps,
                   "batch_size": hp.batch_size, "micro_batch_size": hp.micro_batch_size, "seed": hp.seed,
                   "lora_r": hp.lora_r}

    # --- model, optimizer, schedule
    model = build_lora_model(load_base_for_training(base_model_dir, hp, precision), hp)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=hp.learning_rate, weight_decay=hp.weight_decay)
    warmup = effective_warmup_steps(hp.warmup_steps, plan.total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, partial(
        lr_factor, warmup_steps=warmup, total_steps=plan.total_steps, scheduler=hp.lr_scheduler))
    scaler = torch.amp.GradScaler("cuda") if precision.use_grad_scaler else None
    head_weight = _frozen_head_weight(model, precision)

    # --- resume
    step, tokens, metrics, resumed_from, last_saved = 0, 0, {}, None, 0
    remove_stale_temp_dirs(out_dir)
    latest = latest_checkpoint(out_dir)
    if latest is not None:
        meta = load_checkpoint(latest, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler)
        if meta.get("fingerprint") != fingerprint:
            raise ValueError(f"{latest} belongs to a different run (data or batching changed); use a new out_dir")
        step, tokens, metrics = meta["step"], meta["tokens"], meta.get("metrics", {})
        resumed_from = last_saved = step

    def checkpoint(at_step: int, rng_state: dict) -> None:
        meta = {"tokens": tokens, "total_steps": plan.total_steps, "metrics": metrics, "fingerprint": fingerprint}
        path = save_checkpoint(out_dir, at_step, model=model, optimizer=optimizer, scheduler=scheduler,
                               rng_state=rng_state, meta=meta, scaler=scaler)
        if on_checkpoint:
            on_checkpoint({"step": at_step, "path": str(path), "metrics": dict(metrics)})

    def evaluate() -> dict:
        res = evaluate_loss(model, val, micro_batch_size=hp.micro_batch_size, pad_id=pad_id,
                            device=precision.device, autocast_dtype=precision.autocast_dtype, head_weight=head_weight)
        return {"valid_loss": res["loss"], "valid_mean_token_accuracy": res["mean_token_accuracy"]}

    def result(status: str) -> dict:
        return {"status": status, "adapter_dir": str(out_dir / ADAPTER_DIR) if status == "succeeded" else None,
                "steps": step, "total_steps": plan.total_steps, "trained_tokens": tokens, "n_train": len(train),
                "n_val": len(val), "resumed_from_step": resumed_from, "device": str(precision.device),
                "precision": precision.name, "seconds": round(time.perf_counter() - started, 3), **metrics}

    # --- loop
    epoch_plan: tuple[int, list] = (-1, [])
    window = _Window()
    while step < plan.total_steps:
        epoch, index = divmod(step, plan.steps_per_epoch)
        if epoch_plan[0] != epoch:
            epoch_plan = (epoch, plan_epoch(lengths, hp.batch_size, hp.micro_batch_size, hp.seed, epoch,
                                            hp.group_by_length))
        batches = step_micro_batches(train, epoch_plan[1][index], lengths, hp, pad_id)
        step_loss_count = sum(b["n_loss"] for b in batches)
        boundary_rng = capture_rng_state()
        learning_rate = scheduler.get_last_lr()[0]
        step_sums = _Window()
        for batch in batches:
            if should_stop is not None and should_stop():
                optimizer.zero_grad(set_to_none=True)
                if step > 0 and step != last_saved:
                    checkpoint(step, boundary_rng)
                return result("cancelled")
            sums = _micro_step(model, batch, precision, head_weight, step_loss_count, scaler)
            step_sums.add(sums.loss.detach(), sums.correct, sums.count, batch["n_tokens"])
        _optimizer_step(optimizer, scheduler, scaler, params, hp.max_grad_norm)
        step += 1
        tokens += step_sums.tokens
        window.add(step_sums.loss, step_sums.correct, step_sums.count, step_sums.tokens)

        is_eval = bool(val) and ((hp.eval_steps and step % hp.eval_steps == 0) or step in save_at)
        if step % hp.logging_steps == 0 or is_eval or step == plan.total_steps:
            metrics = {"step": step, "total_steps": plan.total_steps, **window.metrics(), "learning_rate": learning_rate,
                       "tokens": tokens, "epoch": step / plan.steps_per_epoch}
            if is_eval:
                metrics.update(evaluate())
            if on_step:
                on_step(dict(metrics))
            window = _Window()
        if step in save_at:
            checkpoint(step, capture_rng_state())
            last_saved = step
            window.started = time.perf_counter()

    # --- save
    adapter_dir = out_dir / ADAPTER_DIR
    if resumed_from != plan.total_steps or not _adapter_ok(adapter_dir):
        probe = torch.tensor([train[0].input_ids[:PROBE_TOKENS]], device=precision.device)
        save_adapter(model, adapter_dir, probe_ids=probe, autocast_dtype=precision.autocast_dtype)
    return result("succeeded")


def step_micro_batches(train: list[TokenizedExample], micro_batches: list[list[int]], lengths: list[int],
                       hp: FinetuneHyperparameters, pad_id: int) -> list[dict]:
    """The collated micro-batches of one optimizer step: length-sorted right-padded rows, or with
    ``packing`` the step's examples packed into rows of at most ``cutoff_len`` tokens
    (``micro_batch_size`` rows per forward pass)."""
    if not hp.packing:
        return [collate_micro_batch([train[i] for i in mb], pad_id) for mb in micro_batches]
    group = [i for mb in micro_batches for i in mb]
    return [collate_packed_micro_batch([[train[i] for i in row] for row in rows], pad_id)
            for rows in pack_step(group, lengths, hp.cutoff_len, hp.micro_batch_size)]


def _micro_step(model: Any, batch: dict, precision: TrainPrecision, head_weight: torch.Tensor | None,
                step_loss_count: int, scaler: Any) -> Any:
    """Forward + backward of one micro-batch; the loss is normalised by the whole step's target count."""
    device = precision.device
    positions = target_positions(batch["targets"]).to(device, non_blocking=True)
    packed = batch.get("position_ids")
    sums = causal_lm_loss_sums(model, batch["input_ids"].to(device, non_blocking=True),
                               batch["targets"].to(device, non_blocking=True), positions,
                               autocast_dtype=precision.autocast_dtype, head_weight=head_weight,
                               position_ids=packed.to(device, non_blocking=True) if packed is not None else None)
    loss = sums.loss / step_loss_count
    (scaler.scale(loss) if scaler is not None else loss).backward()
    return sums


def _optimizer_step(optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any, params: list,
                    max_grad_norm: float) -> None:
    if scaler is not None:
        scaler.unscale_(optimizer)
    if max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def _frozen_head_weight(model: Any, precision: TrainPrecision) -> torch.Tensor | None:
    """A copy of the frozen output head in the autocast dtype, cast once instead of at every step."""
    head = model.get_base_model().get_output_embeddings()
    if precision.autocast_dtype is None or head.weight.requires_grad:
        return None
    return head.weight.detach().to(precision.autocast_dtype)


def _adapter_ok(adapter_dir: Path) -> bool:
    try:
        verify_adapter_files(adapter_dir)
        return True
    except RuntimeError:
        return False
