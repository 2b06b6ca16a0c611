"""Constrained decoding inside the engine's batched loop: one llguidance matcher per constrained row,
one token mask for the whole batch (unconstrained rows: every token allowed).

Each step ``allowed(rows, vocab)`` fills the rows' bitmasks (~0.1 ms a row; on ``LLExecutor``'s threads
from ``PARALLEL_ROWS`` rows, GIL released) and unpacks them to a (rows, vocab) boolean mask that
``sampling.select_next_tokens`` applies before greedy / top-k / top-p selection; ``consume(rows, tokens)``
advances each matcher by its row's token.
EOS is in a row's mask only where its grammar accepts, so a constrained answer ends cleanly (or runs
into ``max_tokens``). Rows are keyed by ``DecodeRow.index``, so rows leaving the batch need no bookkeeping.
Why llguidance: see ``contracts.structured``.
"""
from __future__ import annotations

import threading
from typing import Any

import numpy as np
import torch

from worker.ml.decoding.loaded_model import LoadedModel
from worker.ml.decoding.rows import DecodeRow

_TOKENIZERS: dict[tuple[int, int], tuple[Any, Any]] = {}  # (id(hf tokenizer), vocab) -> (hf tokenizer, LLTokenizer)
_LOCK = threading.Lock()
PARALLEL_ROWS = 16  # constrained rows from which masks are computed on llguidance's thread pool


def ll_tokenizer(loaded: LoadedModel, vocab: int):
    """The llguidance tokenizer of a model (built once, ~1 s), with the model's EOS ids and logits width."""
    import llguidance.hf

    key = (id(loaded.tokenizer), vocab)
    with _LOCK:
        if key not in _TOKENIZERS:
            eos = sorted(loaded.eos_ids)
            _TOKENIZERS[key] = (loaded.tokenizer, llguidance.hf.from_tokenizer(
                loaded.tokenizer, n_vocab=vocab, eos_token=eos if len(eos) > 1 else eos[0]))
        return _TOKENIZERS[key][1]


class BatchGrammar:
    """The matchers of a bucket's constrained rows; None from ``of`` when no row is constrained."""

    def __init__(self, loaded: LoadedModel, rows: list[DecodeRow]) -> None:
        self.loaded = loaded
        self.grammars = {r.index: r.request.constraint.grammar for r in rows if r.request.constraint is not None}
        self.matchers: dict[int, Any] = {}
        self.executor = None

    @classmethod
    def of(cls, loaded: LoadedModel, rows: list[DecodeRow]) -> BatchGrammar | None:
        return cls(loaded, rows) if any(r.request.constraint is not None for r in rows) else None

    def _start(self, vocab: int) -> None:
        from llguidance import LLExecutor, LLMatcher

        tokenizer = ll_tokenizer(self.loaded, vocab)
        self.matchers = {i: LLMatcher(tokenizer, g, log_level=0) for i, g in self.grammars.items()}
        self.executor = LLExecutor()

    def allowed(self, rows: list[DecodeRow], vocab: int, device: torch.device) -> torch.Tensor:
        """(rows, vocab) bool: the tokens each row may take next."""
        if self.executor is None:
            self._start(vocab)
        words = (vocab + 31) // 32
        bits = np.full((len(rows), words), -1, dtype=np.int32)
        pairs = [(self.matchers[r.index], j) for j, r in enumerate(rows) if r.index in self.matchers]
        if len(pairs) >= PARALLEL_ROWS:  # llguidance's thread pool pays off past a few rows
            self.executor.unsafe_compute_mask_ptr(pairs, bits.ctypes.data, words * 4, len(rows))
        for matcher, j in pairs if len(pairs) < PARALLEL_ROWS else []:
            matcher.unsafe_compute_mask_ptr(bits[j].ctypes.data, words * 4)
        mask = torch.from_numpy(np.unpackbits(bits.view(np.uint8), axis=1, bitorder="little")[:, :vocab]).bool()
        for j in np.flatnonzero(~bits.any(axis=1)):  # a matcher in error (should not happen): end the row
            mask[j, min(self.loaded.eos_ids)] = True
        return mask.to(device)

    def consume(self, rows: list[DecodeRow], tokens: list[int]) -> None:
        for row, token in zip(rows, tokens):
            matcher = self.matchers.get(row.index)
            if matcher is not None and token not in self.loaded.eos_ids:
                matcher.consume_token(token)
