"""Log-probabilities of given tokens under raw logits: the one computation behind generated-token
``logprobs``, echoed prompts and teacher-forced scoring."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TargetLogprobs:
    chosen: list[float]                   # log-probability of each position's target token
    greedy: list[bool]                    # the target was the position's argmax
    top: list[list[tuple[int, float]]]    # the k best (id, log-probability) per position, best first; [] when k = 0


def target_logprobs(logits: torch.Tensor, targets: torch.Tensor, k: int = 0) -> TargetLogprobs:
    """fp32 ``log_softmax`` of ``logits`` (positions x vocabulary) read at ``targets`` (one per position)."""
    logprobs = torch.log_softmax(logits, dim=-1, dtype=torch.float32)
    targets = targets.to(logprobs.device)
    chosen = logprobs.gather(-1, targets[:, None])[:, 0].tolist()
    greedy = (logprobs.argmax(-1) == targets).tolist()
    if k == 0:
        return TargetLogprobs(chosen, greedy, [[] for _ in chosen])
    top = torch.topk(logprobs, k, dim=-1)
    return TargetLogprobs(chosen, greedy, [list(zip(i, v)) for i, v in zip(top.indices.tolist(), top.values.tolist())])
