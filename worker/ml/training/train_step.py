"""One optimizer step of the LoRA recipe: collate its micro-batches, forward + backward each, update.

The loss of every micro-batch is divided by the target count of the whole step, so accumulating
gradients over micro-batches gives the token-weighted mean loss of the step (what one big batch
would give). Loss sums stay on the device; the host reads them only when metrics are logged.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from contracts.configs import FinetuneHyperparameters
from worker.ml.training.data import (
    TokenizedExample,
    collate_micro_batch,
    collate_packed_micro_batch,
    pack_step,
)
from worker.ml.training.devices import TrainPrecision
from worker.ml.training.loss import causal_lm_loss_sums, target_positions


@dataclass
class MetricWindow:
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


def micro_step(model: Any, batch: dict, precision: TrainPrecision, head_weight: torch.Tensor | None,
               step_loss_count: int, scaler: Any, hp: FinetuneHyperparameters | None = None) -> Any:
    """Forward + backward of one micro-batch; the loss is normalised by the whole step's target count.
    ``hp`` carries the loss switches (``fused_head_loss``, ``loss_chunk_tokens``); None: their defaults."""
    device = precision.device
    hp = hp or FinetuneHyperparameters()
    positions = target_positions(batch["targets"]).to(device, non_blocking=True)
    packed = batch.get("position_ids")
    sums = causal_lm_loss_sums(model, batch["input_ids"].to(device, non_blocking=True),
                               batch["targets"].to(device, non_blocking=True), positions,
                               autocast_dtype=precision.autocast_dtype, head_weight=head_weight,
                               position_ids=packed.to(device, non_blocking=True) if packed is not None else None,
                               fused=hp.fused_head_loss, chunk_tokens=hp.loss_chunk_tokens,
                               labelled_only=hp.head_labelled_only)
    loss = sums.loss / step_loss_count
    (scaler.scale(loss) if scaler is not None else loss).backward()
    return sums


def optimizer_step(optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any, params: list,
                   max_grad_norm: float) -> None:
    """Unscale (fp16), clip, step the optimizer and the LR schedule, drop the gradients."""
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


def frozen_head_weight(model: Any, precision: TrainPrecision) -> torch.Tensor | None:
    """A copy of the frozen output head in the autocast dtype, cast once instead of at every step."""
    head = model.get_base_model().get_output_embeddings()
    if precision.autocast_dtype is None or head.weight.requires_grad:
        return None
    return head.weight.detach().to(precision.autocast_dtype)
