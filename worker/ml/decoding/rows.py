"""The row a request becomes inside the decoding engine, and left padding of token rows.

``DecodeRow`` is the public row type the engine hands to its helpers (KV prefill, beam search):
a request's prompt ids, the adapter it runs through and, as it decodes, its new tokens. Prompts
are left-padded (``left_pad``) so that every row's last prompt token sits in the last column:
decoding then appends one column per step for the whole batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from contracts.decoding import DecodeRequest, TokenLogprobs
from worker.ml.decoding.detokenize import TextAccumulator


@dataclass
class DecodeRow:
    index: int  # position in the caller's request list
    request: DecodeRequest
    prompt_ids: list[int]
    adapter: str  # PEFT adapter name, or BASE_ADAPTER
    acc: TextAccumulator | None = None  # set when deltas or stop sequences are needed
    out_ids: list[int] = field(default_factory=list)
    finish: str | None = None  # "stop" | "length" once the row is done
    logprobs: TokenLogprobs | None = None  # returned tokens' log-probabilities, when the request asks for them
    text_offset: int = 0  # where the next returned token starts in the prompt + completion text
    reported: int = 0  # tokens of ``logprobs`` already handed out with an event (streaming)


def left_pad(sequences: list[list[int]], pad_id: int, device: torch.device | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask) of shape (rows, longest): each sequence right-aligned after ``pad_id``s."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for j, seq in enumerate(sequences):
        ids[j, width - len(seq):] = torch.tensor(seq)
        mask[j, width - len(seq):] = 1
    if device is not None:
        ids, mask = ids.to(device), mask.to(device)
    return ids, mask


def positions_of(mask: torch.Tensor) -> torch.Tensor:
    """Position ids of a left-padded batch: 0 at each row's first real token (padding clamped to 0)."""
    return (mask.cumsum(-1) - 1).clamp(min=0)
