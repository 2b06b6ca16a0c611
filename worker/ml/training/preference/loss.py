"""DPO's pieces: the summed log-probability of each row's response tokens, and the sigmoid DPO loss.

``-logsigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r)))`` per pair (Rafailov et al. 2023, eq. 7), with
``pi`` / ``ref`` the policy's / reference's log-probability of the chosen (c) and rejected (r) response,
summed over its tokens (EOS included; prompt tokens masked). Rewards are ``beta * (pi - ref)``; a pair
counts as right when the chosen reward is above the rejected one (trl's ``rewards/accuracies``).
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from worker.ml.training.loss import LOSS_CHUNK_TOKENS, decoder_and_head, target_positions


def sequence_logprobs(model: torch.nn.Module, input_ids: torch.Tensor, targets: torch.Tensor, *,
                      autocast_dtype: torch.dtype | None = None,
                      head_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Per row, the sum of ``log p(targets[b, t] | input_ids[b, :t+1])`` over positions with a target (fp32).

    Right-padded rows need no attention mask (pads come after every real token). The output head runs
    only where targets exist, in chunks, as the SFT loss does.
    """
    body, head = decoder_and_head(model)
    cast = torch.autocast(input_ids.device.type, dtype=autocast_dtype) if autocast_dtype else nullcontext()
    with cast:
        hidden = body(input_ids=input_ids, use_cache=False).last_hidden_state
    positions = target_positions(targets)
    hidden = hidden.reshape(-1, hidden.shape[-1]).index_select(0, positions)
    flat_targets = targets.reshape(-1).index_select(0, positions)
    weight = head_weight if head_weight is not None else head.weight
    pieces = []
    for start in range(0, hidden.shape[0], LOSS_CHUNK_TOKENS):
        logits = F.linear(hidden[start:start + LOSS_CHUNK_TOKENS].to(weight.dtype), weight).float()
        chunk_targets = flat_targets[start:start + LOSS_CHUNK_TOKENS]
        pieces.append(logits.log_softmax(-1).gather(1, chunk_targets[:, None])[:, 0])
    token_logps = torch.cat(pieces) if pieces else hidden.new_zeros(0, dtype=torch.float32)
    rows = torch.div(positions, targets.shape[1], rounding_mode="floor")
    return torch.zeros(targets.shape[0], dtype=torch.float32, device=token_logps.device).index_add(0, rows,
                                                                                                  token_logps)


@dataclass
class DpoTerms:
    """Per pair: the loss (with grad), and the detached rewards of the chosen and rejected answers."""

    losses: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor

    @property
    def margins(self) -> torch.Tensor:
        return self.chosen_rewards - self.rejected_rewards

    @property
    def correct(self) -> torch.Tensor:
        return (self.chosen_rewards > self.rejected_rewards).float()


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, reference_chosen: torch.Tensor,
             reference_rejected: torch.Tensor, beta: float) -> DpoTerms:
    """The sigmoid DPO loss of each pair from summed response log-probabilities (see the module docstring)."""
    chosen_ratio = policy_chosen - reference_chosen
    rejected_ratio = policy_rejected - reference_rejected
    losses = -F.logsigmoid(beta * (chosen_ratio - rejected_ratio))
    return DpoTerms(losses=losses, chosen_rewards=beta * chosen_ratio.detach(),
                    rejected_rewards=beta * rejected_ratio.detach())
