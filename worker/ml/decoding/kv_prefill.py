"""Prefill of a decode bucket: prompts of very different lengths are run in separate groups (less
padding computed), then their KV caches are left-padded to one width and stacked into one batch.

Echo rows that ask for log-probabilities get their prompt's log-probabilities from the same pass: the
decoder's final hidden states are kept for the group and the output layer is applied at those rows'
prompt positions only. That holds when the model's logits are its output layer applied to the final
hidden state, which is checked on every group at the last position (a model that rescales or caps its
logits fails the check): otherwise those rows are returned as ``unscored``, to be scored apart.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F

from worker.ml.decoding.loaded_model import LoadedModel
from worker.ml.decoding.logprobs import PromptLogprobs, prompt_logprobs_from_hidden
from worker.ml.decoding.rows import DecodeRow

if TYPE_CHECKING:
    from transformers import DynamicCache


def prefill_groups(rows: list[DecodeRow], min_tokens: int = 512, max_waste: float = 0.25) -> list[list[DecodeRow]]:
    """Split length-sorted rows where padding would exceed ``max_waste`` of a group's tokens
    (groups keep at least ``min_tokens`` real tokens, so each prefill matmul stays large)."""
    groups: list[list[DecodeRow]] = [[]]
    real = 0
    for row in rows:
        n = len(row.prompt_ids)
        group = groups[-1]
        padded = n * (len(group) + 1)
        if group and real >= min_tokens and padded - (real + n) > max_waste * padded:
            groups.append([])
            group, real = groups[-1], 0
        group.append(row)
        real += n
    return groups


class Prefilled(NamedTuple):
    cache: DynamicCache
    mask: torch.Tensor  # (rows, width) attention mask, left-padded
    logits: torch.Tensor  # (rows, vocab): each row's next-token logits
    prompt_logprobs: dict[int, PromptLogprobs]  # row.index -> its prompt's logprobs (echo rows with logprobs)
    unscored: list[DecodeRow]  # echo rows with logprobs whose prompts this pass could not score


def prefill(lm: LoadedModel, rows: list[DecodeRow], min_group_tokens: int = 512) -> Prefilled:
    """Run the prompts of a length-sorted bucket through the model (cache, mask, last logits), scoring
    the prompts of echo rows that ask for log-probabilities on the way."""
    from transformers import DynamicCache

    parts, scores, unscored = [], {}, []
    for group in prefill_groups(rows, min_group_tokens):
        cache = DynamicCache(config=lm.model.config)
        echo = [r for r in group if r.request.echo and r.request.logprobs is not None]
        with _final_hidden(lm, bool(echo)) as hidden:
            out, _, mask = lm.forward_left_padded([r.prompt_ids for r in group], [r.adapter for r in group],
                                                  cache=cache, use_cache=True, logits_to_keep=1)
        last = out.logits[:, -1]
        if echo:
            group_scores = _score_prompts(lm, group, hidden[0] if hidden else None, last)
            scores.update(group_scores)
            unscored += [r for r in echo if r.index not in group_scores]
        parts.append((cache, mask, last))
    merged = parts[0] if len(parts) == 1 else _stack_caches(lm, parts)
    return Prefilled(*merged, scores, unscored)


@contextmanager
def _final_hidden(lm: LoadedModel, wanted: bool) -> Iterator[list[torch.Tensor]]:
    """While the block runs, the decoder's final hidden states (rows, width, hidden) are appended to the
    list it yields (nothing is kept when not ``wanted``, or for a model without ``get_decoder``)."""
    kept: list[torch.Tensor] = []
    decoder = getattr(lm.model, "get_decoder", lambda: None)() if wanted else None
    if decoder is None:
        yield kept
        return

    def keep(module, args, output):
        hidden = getattr(output, "last_hidden_state", None)
        kept.append(hidden if hidden is not None else output[0])

    handle = decoder.register_forward_hook(keep)
    try:
        yield kept
    finally:
        handle.remove()


def _score_prompts(lm: LoadedModel, group: list[DecodeRow], hidden: torch.Tensor | None, last: torch.Tensor
                   ) -> dict[int, PromptLogprobs]:
    """Prompt logprobs of the group's echo rows from its final hidden states; {} when the output layer
    does not reproduce the model's last logits (or routes through LoRA adapters, which need the batch)."""
    from peft.tuners.lora import LoraLayer

    head = lm.model.get_output_embeddings()
    if hidden is None or head is None or isinstance(head, LoraLayer):
        return {}
    with torch.inference_mode():
        if not torch.allclose(head(hidden[:, -1]).float(), last.float(), rtol=2e-2, atol=5e-2):
            return {}
        return {r.index: prompt_logprobs_from_hidden(head, hidden[j, -len(r.prompt_ids):], r.prompt_ids,
                                                     r.request.logprobs or 0)
                for j, r in enumerate(group) if r.request.echo and r.request.logprobs is not None}


def _stack_caches(lm: LoadedModel, parts: list[tuple[DynamicCache, torch.Tensor, torch.Tensor]]
                  ) -> tuple[DynamicCache, torch.Tensor, torch.Tensor]:
    """One batch from the prefill groups: each cache and mask left-padded to the widest group."""
    from transformers import DynamicCache

    width = max(m.shape[1] for _, m, _ in parts)
    merged = DynamicCache(config=lm.model.config)
    with torch.inference_mode():
        for layer in range(len(parts[0][0].layers)):
            keys = [F.pad(c.layers[layer].keys, (0, 0, width - m.shape[1], 0)) for c, m, _ in parts]
            values = [F.pad(c.layers[layer].values, (0, 0, width - m.shape[1], 0)) for c, m, _ in parts]
            merged.update(torch.cat(keys), torch.cat(values), layer)
        mask = torch.cat([F.pad(m, (width - m.shape[1], 0)) for _, m, _ in parts])
        logits = torch.cat([lg for _, _, lg in parts])
    return merged, mask, logits
