"""Causal-LM loss computed only where labels exist.

The decoder runs once; the output head and the cross-entropy run only on the positions that carry
a target (masked prompt tokens and pads cost nothing there), in fp32, in chunks. Returns sums (not
means) so that a step's loss is token-weighted over all its micro-batches, as a single big batch
would be.

When training with a frozen head, the head and the loss are fused: each chunk's logits give the
loss and, right away, the loss's gradient with respect to the hidden states ((softmax - onehot) @ W),
so the full (tokens x vocab) logits are never kept for the backward pass.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from worker.ml.training.data import IGNORE_INDEX

LOSS_CHUNK_TOKENS = 1024


@dataclass
class LossSums:
    loss: torch.Tensor  # summed cross-entropy (requires grad when training)
    correct: torch.Tensor  # argmax hits, no grad
    count: int  # positions with a target


def decoder_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The transformer body and the output head of a (PEFT-wrapped) causal LM."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.base_model, base.get_output_embeddings()


def target_positions(targets: torch.Tensor) -> torch.Tensor:
    """Flat indices of the positions that carry a target (computed on the host, before the copy)."""
    return (targets.view(-1) != IGNORE_INDEX).nonzero().view(-1)


def causal_lm_loss_sums(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    targets: torch.Tensor,
    positions: torch.Tensor,
    *,
    autocast_dtype: torch.dtype | None = None,
    head_weight: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
    fused: bool = True,
    chunk_tokens: int = LOSS_CHUNK_TOKENS,
    labelled_only: bool = True,
) -> LossSums:
    """Sum of next-token cross-entropy over ``positions`` (flat indices into ``targets``).

    ``targets[b, t]`` is the token expected after ``input_ids[b, t]`` (see ``collate_micro_batch``).
    ``head_weight`` may be a pre-cast copy of the frozen output head; by default the head runs as is.
    ``position_ids`` restarting inside a row mean packed examples (``collate_packed_micro_batch``).
    Speed switches (``FinetuneHyperparameters``): ``fused`` (``fused_head_loss``: the gradient is taken
    chunk by chunk in the forward pass, a frozen head only), ``chunk_tokens`` (``loss_chunk_tokens``),
    ``labelled_only`` (False: the head runs on every position, as a plain ``model(labels=...)`` does).
    """
    body, head = decoder_and_head(model)
    device_type = input_ids.device.type
    cast = torch.autocast(device_type, dtype=autocast_dtype) if autocast_dtype else nullcontext()
    with cast:
        hidden = body(input_ids=input_ids, position_ids=position_ids, use_cache=False).last_hidden_state
    count = int(positions.numel())
    hidden = hidden.reshape(-1, hidden.shape[-1])
    flat_targets = targets.view(-1)
    if labelled_only:
        hidden, flat_targets = hidden.index_select(0, positions), flat_targets.index_select(0, positions)
    weight = head_weight if head_weight is not None else head.weight
    if fused and hidden.requires_grad and torch.is_grad_enabled() and not weight.requires_grad:
        loss, correct = _FusedHeadCrossEntropy.apply(hidden, weight.detach(), flat_targets, chunk_tokens,
                                                    labelled_only)
        return LossSums(loss=loss, correct=correct, count=count)
    loss = hidden.new_zeros((), dtype=torch.float32)
    correct = torch.zeros((), dtype=torch.long, device=hidden.device)
    for start in range(0, hidden.shape[0], chunk_tokens):
        h = hidden[start:start + chunk_tokens]
        t = flat_targets[start:start + chunk_tokens]
        logits = F.linear(h.to(weight.dtype), weight).float()
        loss = loss + F.cross_entropy(logits, t, reduction="sum", ignore_index=IGNORE_INDEX)
        with torch.no_grad():
            correct += (logits.argmax(-1) == t).sum()
    return LossSums(loss=loss, correct=correct, count=count)


class _FusedHeadCrossEntropy(torch.autograd.Function):
    """Summed CE of ``hidden @ weight.T`` against ``targets`` (-100: no loss there); the gradient is
    computed in forward, ``chunk_tokens`` rows at a time."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,  # type: ignore[override]
                chunk_tokens: int = LOSS_CHUNK_TOKENS, all_labelled: bool = True):
        loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
        correct = torch.zeros((), dtype=torch.long, device=hidden.device)
        grad_hidden = torch.empty_like(hidden)
        for start in range(0, hidden.shape[0], chunk_tokens):
            end = start + chunk_tokens
            t = targets[start:end]
            logits = F.linear(hidden[start:end].to(weight.dtype), weight).float()
            loss += F.cross_entropy(logits, t, reduction="sum", ignore_index=IGNORE_INDEX)
            correct += (logits.argmax(-1) == t).sum()
            probs = logits.softmax(-1)
            rows = torch.arange(t.shape[0], device=t.device)
            if all_labelled:
                probs[rows, t] -= 1.0  # d(sum CE)/d(logits)
            else:
                labelled = (t != IGNORE_INDEX).unsqueeze(1)
                probs[rows, t.clamp(min=0)] -= 1.0
                probs.mul_(labelled)  # unlabelled positions get no gradient
            grad_hidden[start:end] = (probs.to(weight.dtype) @ weight).to(hidden.dtype)
        ctx.save_for_backward(grad_hidden)
        ctx.mark_non_differentiable(correct)
        return loss, correct

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor, _grad_correct: torch.Tensor):  # type: ignore[override]
        (grad_hidden,) = ctx.saved_tensors
        return grad_hidden * grad_loss.to(grad_hidden.dtype), None, None, None, None


@torch.no_grad()
def evaluate_loss(
    model: torch.nn.Module,
    examples: list,
    *,
    micro_batch_size: int,
    pad_id: int,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
    head_weight: torch.Tensor | None = None,
) -> dict:
    """Token-weighted loss and next-token accuracy of ``model`` on tokenized examples (eval mode)."""
    from worker.ml.training.data import collate_micro_batch

    was_training = model.training
    model.eval()
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i].input_ids))
    loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    count = 0
    for start in range(0, len(order), micro_batch_size):
        batch = collate_micro_batch([examples[i] for i in order[start:start + micro_batch_size]], pad_id)
        if batch["n_loss"] == 0:
            continue
        positions = target_positions(batch["targets"]).to(device)
        sums = causal_lm_loss_sums(model, batch["input_ids"].to(device), batch["targets"].to(device), positions,
                                   autocast_dtype=autocast_dtype, head_weight=head_weight)
        loss += sums.loss.double()
        correct += sums.correct
        count += sums.count
    model.train(was_training)
    if count == 0:
        return {"loss": float("nan"), "mean_token_accuracy": float("nan"), "tokens": 0}
    return {"loss": loss.item() / count, "mean_token_accuracy": correct.item() / count, "tokens": count}
