"""Prefill of a decode bucket: prompts of very different lengths are run in separate groups (less
padding computed), then their KV caches are left-padded to one width and stacked into one batch."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from worker.ml.decoding.loaded_model import LoadedModel
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


def prefill(lm: LoadedModel, rows: list[DecodeRow], min_group_tokens: int = 512
            ) -> tuple[DynamicCache, torch.Tensor, torch.Tensor]:
    """Run the prompts of a length-sorted bucket through the model: (cache, mask, last logits)."""
    from transformers import DynamicCache

    parts = []
    for group in prefill_groups(rows, min_group_tokens):
        cache = DynamicCache(config=lm.model.config)
        out, _, mask = lm.forward_left_padded([r.prompt_ids for r in group], [r.adapter for r in group],
                                              cache=cache, use_cache=True, logits_to_keep=1)
        parts.append((cache, mask, out.logits[:, -1]))
    if len(parts) == 1:
        return parts[0]
    return _stack_caches(lm, parts)


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
