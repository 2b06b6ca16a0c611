"""Beam search rows of the engine: HF ``generate`` (deterministic, no sampling) on left-padded
groups that share num_beams and max_new_tokens, with the engine's mixed-adapter hooks repeated
per beam. Stop sequences are applied to the finished text."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch

from contracts.decoding import DecodeResult
from worker.ml.decoding.detokenize import find_stop

if TYPE_CHECKING:
    from worker.ml.decoding.engine import InferenceEngine, _Row


def generate_beams(engine: InferenceEngine, rows: list[_Row]) -> Iterator[tuple[_Row, DecodeResult]]:
    groups: dict[tuple[int, int], list[_Row]] = defaultdict(list)
    for row in rows:
        groups[(row.request.num_beams, row.request.max_new_tokens)].append(row)
    for (num_beams, max_new), group in groups.items():
        for start in range(0, len(group), engine.max_batch_size):
            yield from _generate_group(engine, group[start:start + engine.max_batch_size], num_beams, max_new)


def _generate_group(engine: InferenceEngine, rows: list[_Row], num_beams: int, max_new: int
                    ) -> Iterator[tuple[_Row, DecodeResult]]:
    from transformers import GenerationConfig

    width = max(len(r.prompt_ids) for r in rows)
    ids = torch.full((len(rows), width), engine.pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for j, r in enumerate(rows):
        ids[j, width - len(r.prompt_ids):] = torch.tensor(r.prompt_ids)
        mask[j, width - len(r.prompt_ids):] = 1
    config = GenerationConfig(num_beams=num_beams, do_sample=False, max_new_tokens=max_new,
                              pad_token_id=engine.pad_id, eos_token_id=sorted(engine.eos_ids))
    names = [r.adapter for r in rows for _ in range(num_beams)]
    with torch.inference_mode(), engine.adapter_names(names):
        out = engine.model.generate(input_ids=ids.to(engine.device), attention_mask=mask.to(engine.device),
                                    generation_config=config)
    for row, seq in zip(rows, out[:, width:].tolist()):
        end = next((k + 1 for k, t in enumerate(seq) if t in engine.eos_ids), None)
        body = seq[:end - 1] if end else seq
        text = engine.tokenizer.decode(body, skip_special_tokens=True)
        hit = find_stop(text, row.request.stop) if row.request.stop else -1
        finish = "stop" if end or hit >= 0 else "length"
        yield row, DecodeResult(text[:hit] if hit >= 0 else text, finish, len(row.prompt_ids),
                                    end if end else len(body))
