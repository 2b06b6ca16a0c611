"""Beam search rows of the engine: HF ``generate`` (deterministic, no sampling) on left-padded
groups that share num_beams and max_new_tokens, with the mixed-adapter routing repeated per beam.
Stop sequences are applied to the finished text."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import torch

from contracts.decoding import DecodeResult
from worker.ml.decoding.detokenize import find_stop
from worker.ml.decoding.loaded_model import LoadedModel
from worker.ml.decoding.rows import DecodeRow, left_pad


def generate_beams(lm: LoadedModel, rows: list[DecodeRow], max_batch_size: int
                   ) -> Iterator[tuple[DecodeRow, DecodeResult]]:
    groups: dict[tuple[int, int], list[DecodeRow]] = defaultdict(list)
    for row in rows:
        groups[(row.request.num_beams, row.request.max_new_tokens)].append(row)
    for (num_beams, max_new), group in groups.items():
        for start in range(0, len(group), max_batch_size):
            yield from _generate_group(lm, group[start:start + max_batch_size], num_beams, max_new)


def _generate_group(lm: LoadedModel, rows: list[DecodeRow], num_beams: int, max_new: int
                    ) -> Iterator[tuple[DecodeRow, DecodeResult]]:
    from transformers import GenerationConfig

    ids, mask = left_pad([r.prompt_ids for r in rows], lm.pad_id, lm.device)
    config = GenerationConfig(num_beams=num_beams, do_sample=False, max_new_tokens=max_new,
                              pad_token_id=lm.pad_id, eos_token_id=sorted(lm.eos_ids))
    names = [r.adapter for r in rows for _ in range(num_beams)]
    with torch.inference_mode(), lm.adapter_rows(names):
        out = lm.model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
    for row, seq in zip(rows, out[:, ids.shape[1]:].tolist()):
        yield row, _beam_result(lm, row, seq)


def _beam_result(lm: LoadedModel, row: DecodeRow, seq: list[int]) -> DecodeResult:
    """The best beam's new tokens as a result: cut at the first EOS, then at a stop sequence."""
    end = next((k + 1 for k, t in enumerate(seq) if t in lm.eos_ids), None)
    body = seq[:end - 1] if end else seq
    text = lm.tokenizer.decode(body, skip_special_tokens=True)
    hit = find_stop(text, row.request.stop) if row.request.stop else -1
    finish = "stop" if end or hit >= 0 else "length"
    return DecodeResult(text[:hit] if hit >= 0 else text, finish, len(row.prompt_ids), end if end else len(body))
