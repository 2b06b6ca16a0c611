"""Prefill of a decode bucket: prompts of very different lengths are run in separate groups (less
padding computed), then their KV caches are left-padded to one width and stacked into one batch."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from transformers import DynamicCache

    from worker.ml.decoding.engine import InferenceEngine, _Row


def prefill_groups(rows: list[_Row], min_tokens: int = 512, max_waste: float = 0.25) -> list[list[_Row]]:
    """Split length-sorted rows where padding would exceed ``max_waste`` of a group's tokens
    (groups keep at least ``min_tokens`` real tokens, so each prefill matmul stays large)."""
    groups: list[list[_Row]] = [[]]
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


def prefill(engine: InferenceEngine, rows: list[_Row]) -> tuple[DynamicCache, torch.Tensor, torch.Tensor]:
    """Run the prompts of a length-sorted bucket through the model: (cache, mask, last logits)."""
    from transformers import DynamicCache

    parts = []
    for group in prefill_groups(rows, engine.prefill_group_min_tokens):
        width = len(group[-1].prompt_ids)
        ids = torch.full((len(group), width), engine.pad_id, dtype=torch.long)
        mask = torch.zeros((len(group), width), dtype=torch.long)
        for j, r in enumerate(group):
            ids[j, width - len(r.prompt_ids):] = torch.tensor(r.prompt_ids)
            mask[j, width - len(r.prompt_ids):] = 1
        ids, mask = ids.to(engine.device), mask.to(engine.device)
        cache = DynamicCache(config=engine.model.config)
        with torch.inference_mode(), engine.adapter_names([r.adapter for r in group]):
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = engine.model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache,
                                  use_cache=True, logits_to_keep=1).logits[:, -1]
        parts.append((cache, mask, logits))
    if len(parts) == 1:
        return parts[0]
    width = max(m.shape[1] for _, m, _ in parts)
    merged = DynamicCache(config=engine.model.config)
    with torch.inference_mode():
        for layer in range(len(parts[0][0].layers)):
            keys = [F.pad(c.layers[layer].keys, (0, 0, width - m.shape[1], 0)) for c, m, _ in parts]
            values = [F.pad(c.layers[layer].values, (0, 0, width - m.shape[1], 0)) for c, m, _ in parts]
            merged.update(torch.cat(keys), torch.cat(values), layer)
        mask = torch.cat([F.pad(m, (width - m.shape[1], 0)) for _, m, _ in parts])
        logits = torch.cat([lg for _, _, lg in parts])
    return merged, mask, logits
