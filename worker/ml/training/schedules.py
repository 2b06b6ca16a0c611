"""Pure step arithmetic for training: the learning-rate factor and the checkpoint cadence.

The LR factors are those of ``transformers.get_{linear,cosine,constant}_schedule_with_warmup``
(as used by the HF Trainer): the optimizer step with 0-based index ``s`` uses ``lr * factor(s)``,
so the first step of a warmup runs at lr 0, exactly like the Alpaca-LoRA recipe.
"""
from __future__ import annotations

import math


def effective_warmup_steps(warmup_steps: int, total_steps: int) -> int:
    """``warmup_steps``, except when it would not end before the run does: then 10% of the run."""
    if warmup_steps < total_steps:
        return warmup_steps
    return max(1, math.ceil(0.1 * total_steps)) if warmup_steps else 0


def lr_factor(step: int, *, warmup_steps: int, total_steps: int, scheduler: str) -> float:
    """Multiplier of the peak learning rate for the optimizer step with 0-based index ``step``."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    if scheduler == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    if scheduler == "linear":
        return max(0.0, 1.0 - progress)
    if scheduler == "cosine":
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
    raise ValueError(f"unknown lr_scheduler {scheduler!r}")


def checkpoint_steps(total_steps: int, save_steps: int, n_checkpoints: int) -> list[int]:
    """Steps (1-based counts of finished optimizer steps) after which a checkpoint is written.

    Every ``save_steps`` when it is set, otherwise ``n_checkpoints`` spread evenly; the last step
    is always one (it also produces the final adapter).
    """
    if total_steps <= 0:
        return []
    if save_steps > 0:
        steps = set(range(save_steps, total_steps + 1, save_steps))
    else:
        n = min(n_checkpoints, total_steps)
        steps = {math.ceil(total_steps * i / n) for i in range(1, n + 1)}
    steps.add(total_steps)
    return sorted(steps)
