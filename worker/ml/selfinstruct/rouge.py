"""Exact, fast ROUGE-L near-duplicate filter (same decisions as ``rouge_score``, no stemming).

Self-Instruct and Alpaca drop a candidate instruction when its ROUGE-L F1 against any instruction
already in the pool is ``> threshold`` (0.7); accepted candidates join the pool at once. The
reference compares every candidate with every pool item (quadratic, ~30 candidates/s at 3k).

Here, only pairs that *could* exceed the threshold are ever scored:

1. ``F = 2*LCS/(la+lb)`` (algebraically equal to rouge_score's 2PR/(P+R)), and
   ``LCS <= multiset overlap <= min(la, lb)``; so a pair needs an overlap of at least
   ``alpha = t*(la+lb)/2`` tokens, hence lengths within a factor ``(2-t)/t`` of each other.
2. Prefix filtering over an inverted index: each token sequence is seen as the *set* of
   (token, occurrence) elements, sorted rarest-first in one global order. Two sets sharing
   ``>= alpha`` elements must share an element among their first ``size - alpha + 1``; so each
   pool item is indexed under its prefix only, and a candidate probes its own prefix only.
   (The global order is rebuilt from document frequencies as the pool doubles.)
3. Survivors are checked with the length and overlap bounds, then scored with the exact
   bit-parallel LCS of ``evaluation.rouge_l`` (the candidate's match vectors are built once),
   best bound first.

The final comparison uses rouge_score's own float formula, so ties at exactly the threshold are
decided identically. Pruning uses a small epsilon on the safe side, never deciding by a bound.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from worker.ml.evaluation.rouge_l import get_tokenizer, lcs_length, lcs_with_masks, rouge_l_f1, token_masks

_EPS = 1e-9
_OCC_BITS = 8  # element key = token_id << 8 | min(occurrence, 255); merging buckets only adds candidates


class Verdict(NamedTuple):
    """Outcome of one candidate. ``score``/``nearest_index`` are exact for rejected candidates;
    for kept ones they are the best pair that survived pruning (``None``/0.0 when none did)."""

    kept: bool
    nearest_index: int | None
    score: float


class RougeFilter:
    """Near-duplicate filter with a growing pool.

    ``add(text)`` scores ``text`` against the pool; it is kept (and joins the pool) unless some
    pool item has ROUGE-L F1 ``> threshold``. ``add_reference(text)`` puts text (seed
    instructions) in the pool unconditionally.
    """

    def __init__(self, threshold: float = 0.7, tokenizer: str = "rouge_score", pool: Iterable[str] = ()):
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        self.threshold = threshold
        self.tokenizer_name = tokenizer
        self._tokenize = get_tokenizer(tokenizer)
        self.texts: list[str] = []
        self._vocab: dict[str, int] = {}
        self._seqs: list[list[int]] = []
        self._counts: list[dict[int, int]] = []
        self._df: Counter[int] = Counter()  # live document frequency per token id
        self._rank_df: dict[int, int] = {}  # frozen snapshot that defines the global order
        self._index: dict[int, list[int]] = {}
        self._indexed_at = 0
        self._hint: Counter[int] = Counter()
        for text in pool:
            self.add_reference(text)

    def __len__(self) -> int:
        return len(self.texts)

    # --- public API
    def add(self, text: str) -> Verdict:
        """Score ``text`` against the pool; keep it (join the pool) unless it is a near-duplicate."""
        seq = self._encode(text)
        verdict = self._best_match(seq, stop_above=False)
        if verdict.kept:
            self._append(text, seq)
        return verdict

    def check(self, text: str) -> Verdict:
        """Like ``add`` but never changes the pool."""
        return self._best_match(self._encode(text), stop_above=False)

    def add_reference(self, text: str) -> None:
        """Put ``text`` in the pool without checking it (seed instructions)."""
        self._append(text, self._encode(text))

    def filter_candidates(self, candidates: Sequence[str]) -> list[int]:
        """Indices of the candidates kept, in order, each compared with the pool grown so far."""
        seqs = [self._encode(c) for c in candidates]
        for seq in seqs:  # frequencies of the whole batch give a good rarest-first order from the start
            self._hint.update(set(seq))
        self._rebuild_index()
        kept = []
        for i, (text, seq) in enumerate(zip(candidates, seqs)):
            if self._best_match(seq, stop_above=True).kept:
                self._append(text, seq)
                kept.append(i)
        return kept

    def score_pair(self, a: str, b: str) -> float:
        """ROUGE-L F1 of two texts under this filter's tokenizer (for tests and reports)."""
        sa, sb = self._tokenize(a), self._tokenize(b)
        return rouge_l_f1(lcs_length(sa, sb), len(sa), len(sb))

    # --- internals
    def _encode(self, text: str) -> list[int]:
        vocab = self._vocab
        return [vocab.setdefault(tok, len(vocab)) for tok in self._tokenize(text)]

    def _min_overlap(self, length: int) -> int:
        """Fewest shared elements any admissible partner of a ``length``-token item needs."""
        return max(1, math.ceil(self.threshold * length / (2.0 - self.threshold) - _EPS))

    def _prefix(self, seq: list[int]) -> list[int]:
        """Element keys of the first ``len - alpha + 1`` elements in the global order."""
        occ: dict[int, int] = {}
        elems = []
        rank = self._rank_df
        for tok in seq:
            k = occ.get(tok, 0) + 1
            occ[tok] = k
            elems.append((rank.get(tok, 0), tok, k))
        elems.sort()
        n = len(seq) - self._min_overlap(len(seq)) + 1
        return [(tok << _OCC_BITS) | min(k, 255) for _, tok, k in elems[:n]]

    def _append(self, text: str, seq: list[int]) -> None:
        idx = len(self.texts)
        self.texts.append(text)
        self._seqs.append(seq)
        counts = Counter(seq)
        self._counts.append(counts)
        self._df.update(counts.keys())
        if seq:
            if len(self.texts) >= 2 * max(self._indexed_at, 32):
                self._rebuild_index()
            else:
                for key in self._prefix(seq):
                    self._index.setdefault(key, []).append(idx)

    def _rebuild_index(self) -> None:
        self._rank_df = dict(self._df + self._hint)
        self._index = {}
        for idx, seq in enumerate(self._seqs):
            for key in self._prefix(seq) if seq else ():
                self._index.setdefault(key, []).append(idx)
        self._indexed_at = len(self.texts)

    def _best_match(self, seq: list[int], stop_above: bool) -> Verdict:
        la = len(seq)
        t = self.threshold
        if not la or not self.texts or t >= 1.0:
            return Verdict(True, None, 0.0)
        found: set[int] = set()
        index = self._index
        for key in self._prefix(seq):
            posting = index.get(key)
            if posting:
                found.update(posting)
        if not found:
            return Verdict(True, None, 0.0)
        counts_a = Counter(seq)
        lo, hi = la * t / (2.0 - t) - _EPS, la * (2.0 - t) / t + _EPS
        bound_t = t - _EPS
        scored = []
        seqs, counts = self._seqs, self._counts
        for idx in found:
            lb = len(seqs[idx])
            if lb < lo or lb > hi:
                continue
            cb = counts[idx]
            overlap = 0
            for tok, c in counts_a.items():
                d = cb.get(tok)
                if d:
                    overlap += min(d, c)
            bound = 2.0 * overlap / (la + lb)
            if bound >= bound_t:
                scored.append((bound, idx))
        if not scored:
            return Verdict(True, None, 0.0)
        scored.sort(key=lambda p: (-p[0], p[1]))
        masks = token_masks(seq)
        best_idx, best = None, -1.0
        for bound, idx in scored:
            if bound < best - _EPS:
                break
            other = seqs[idx]
            lcs = lcs_with_masks(masks, la, other)
            f = rouge_l_f1(lcs, la, len(other))
            if f > best or (f == best and best_idx is not None and idx < best_idx):
                best_idx, best = idx, f
                if stop_above and f > t:
                    break
        return Verdict(not best > t, best_idx, max(best, 0.0))

