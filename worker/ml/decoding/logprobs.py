"""Log-probabilities of the tokens a row returns, as OpenAI's ``logprobs`` report them.

Every log-probability is of the distribution the model itself gives: ``log_softmax`` of the raw logits
(fp32), before temperature, top-p / top-k or any logits mask shape the choice of the next token. This
is what OpenAI and vLLM return, and what loglikelihood evaluation needs.

- generated tokens: ``step_logprobs`` at each decode step, from the logits the engine already has;
- echoed prompt tokens (first prompt token: no log-probability, nothing precedes it): when the row
  also generates, in the same prefill pass that fills its KV cache (``prompt_logprobs_from_hidden``
  applies the output layer to the final hidden states at the prompt's positions, a bounded chunk of
  positions at a time); for scoring-only rows, and for models whose logits are not just the output
  layer of the last hidden state, teacher-forced through ``scoring.score_continuations``
  (``prompt_logprobs``);
- ``TokenPieces`` turns token ids into OpenAI's token strings and bytes (byte-level BPE tokens are
  mapped back to their bytes; a token that is only part of a UTF-8 character shows as ``bytes:\\x..``).
"""
from __future__ import annotations

import json
import re
from typing import Any

import torch

from contracts.decoding import TokenLogprobs, TokenPiece
from worker.ml.decoding.loaded_model import LoadedModel
from worker.ml.decoding.rows import DecodeRow
from worker.ml.decoding.scoring import ScoreItem, score_continuations
from worker.ml.decoding.token_logprobs import target_logprobs

LOGITS_CHUNK_BYTES = 1 << 28  # fp32 logits of the prompt positions computed at once (per echo row)
PromptLogprobs = list[tuple[float | None, list[tuple[int, float]]]]  # per prompt token: (logprob, top-k)
_BYTE_TOKEN = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")  # SentencePiece byte fallback


def _byte_level_decoder() -> dict[str, int]:
    """GPT-2's byte <-> printable character table, reversed (character -> byte)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def _is_byte_level(tokenizer: Any) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    try:
        return '"ByteLevel"' in json.dumps(json.loads(backend.to_str()).get("decoder"))
    except (ValueError, AttributeError):
        return False


class TokenPieces:
    """Token id -> ``TokenPiece`` (text and UTF-8 bytes), cached per id."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.special = set(getattr(tokenizer, "all_special_ids", []) or [])
        self.byte_decoder = _byte_level_decoder() if _is_byte_level(tokenizer) else None
        self._cache: dict[int, TokenPiece] = {}

    def __call__(self, token_id: int) -> TokenPiece:
        piece = self._cache.get(token_id)
        if piece is None:
            piece = self._cache[token_id] = self._piece(token_id)
        return piece

    def _piece(self, token_id: int) -> TokenPiece:
        raw = self.tokenizer.convert_ids_to_tokens(token_id)
        if raw is None:
            raw = ""
        if token_id in self.special:
            data = raw.encode()
        elif (m := _BYTE_TOKEN.match(raw)) is not None:
            data = bytes([int(m.group(1), 16)])
        elif self.byte_decoder is not None and all(c in self.byte_decoder for c in raw):
            data = bytes(self.byte_decoder[c] for c in raw)
        else:
            data = self.tokenizer.decode([token_id]).encode()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = "bytes:" + "".join(f"\\x{b:02x}" for b in data)
        return TokenPiece(text, list(data))

    def chars(self, token_id: int) -> int:
        """Characters a token adds to the text: its UTF-8 lead bytes (0 for a continuation-only piece)."""
        piece = self(token_id)
        return len(piece.text) if token_id in self.special else sum(1 for b in piece.bytes if b & 0xC0 != 0x80)

    def add(self, logprobs: TokenLogprobs, offset: int, token_id: int, logprob: float | None,
            top: list[tuple[int, float]]) -> int:
        """Append one token to ``logprobs`` (with its pieces) at text ``offset``; return the next offset."""
        logprobs.token_ids.append(token_id)
        logprobs.token_logprobs.append(logprob)
        logprobs.top_logprobs.append(top)
        logprobs.text_offset.append(offset)
        for t in [token_id, *(t for t, _ in top)]:
            if t not in logprobs.pieces:
                logprobs.pieces[t] = self(t)
        return offset + self.chars(token_id)


def step_logprobs(logits: torch.Tensor, tokens: torch.Tensor, top_k: list[int]
                  ) -> list[tuple[float, list[tuple[int, float]]]]:
    """(log-probability of ``tokens[j]``, its ``top_k[j]`` best alternatives) for each row of raw ``logits``."""
    res = target_logprobs(logits, tokens, max(top_k, default=0))
    return [(c, top[:k]) for c, top, k in zip(res.chosen, res.top, top_k)]


def prompt_logprobs_from_hidden(head: torch.nn.Module, hidden: torch.Tensor, prompt_ids: list[int], top_k: int
                                ) -> PromptLogprobs:
    """A prompt's log-probabilities from the final hidden states of its positions (``hidden``: (len, H),
    the prompt's own columns): position p predicts token p + 1."""
    out: PromptLogprobs = [(None, [])]
    chunk = max(1, LOGITS_CHUNK_BYTES // (4 * head.weight.shape[0]))
    targets = torch.tensor(prompt_ids[1:], device=hidden.device)
    hidden = hidden[:len(targets)]  # the last position predicts past the prompt
    for start in range(0, len(targets), chunk):
        logits = head(hidden[start:start + chunk])
        out += step_logprobs(logits, targets[start:start + chunk], [top_k] * logits.shape[0])
    return out


def prompt_logprobs(lm: LoadedModel, rows: list[DecodeRow], max_batch_tokens: int) -> list[PromptLogprobs]:
    """Per row, (log-probability, top alternatives) of every prompt token given the ones before it
    (None and no alternatives for the first), all rows scored together, each through its adapter."""
    items = [ScoreItem(r.prompt_ids[:1], r.prompt_ids[1:], r.adapter, r.request.logprobs or 0) for r in rows]
    scored = score_continuations(lm, items, max_batch_tokens)
    out = []
    for item, res in zip(items, scored):
        tops = res.top_logprobs or [[] for _ in res.token_logprobs]
        out.append([(None, [])] + list(zip(res.token_logprobs, tops)))
    return out
