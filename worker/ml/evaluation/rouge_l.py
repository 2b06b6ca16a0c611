"""ROUGE-L pieces shared by the eval metric (``scoring.rouge_l``) and the self-instruct near-duplicate
filter (``selfinstruct.rouge.RougeFilter``): the tokenizers, an exact fast LCS and the F-measure.

Tokenizers:

``rouge_score``: exactly rouge_score's default tokenizer (no stemming): lower-case, every run of
characters outside ``[a-z0-9]`` becomes a space, keep ``[a-z0-9]+`` tokens. Non-Latin text yields
no tokens at all, so rouge_score's filter silently never fires on Chinese.

``cjk``: unicode-aware. Lower-case; every Han / Kana / Hangul / CJK-punctuation-free character
becomes its own token, and runs of other letters or digits (any script) are one token each.
On pure-ASCII text it gives the same tokens as ``rouge_score``.

The LCS is Hyyro's bit-vector algorithm on Python integers (one add, one subtract and three logic
ops per token of the longer side); ``rouge_l_f1`` uses rouge_score's own float operations, so ties
at a threshold are decided identically.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

TokenizerName = Literal["rouge_score", "cjk"]

_NON_ALPHANUM_RE = re.compile(r"[^a-z0-9]+")
_SPACES_RE = re.compile(r"\s+")
_VALID_TOKEN_RE = re.compile(r"^[a-z0-9]+$")

# CJK ideographs (incl. extensions A-G and compatibility), kana, hangul, bopomofo: one token per char.
_CJK_CHARS = (
    "\u2e80-\u2fdf\u3005\u3007\u3021-\u3029\u3040-\u30ff\u3100-\u312f\u3130-\u318f\u31a0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f"
)
_CJK_TOKEN_RE = re.compile(f"[{_CJK_CHARS}]|[^\\W_{_CJK_CHARS}]+")
_CJK_CHAR_RE = re.compile(f"[{_CJK_CHARS}]")


def tokenize_rouge_score(text: str) -> list[str]:
    """rouge_score.tokenize.tokenize(text, stemmer=None), reproduced token for token."""
    text = _NON_ALPHANUM_RE.sub(" ", text.lower())
    return [t for t in _SPACES_RE.split(text) if _VALID_TOKEN_RE.match(t)]


def tokenize_cjk(text: str) -> list[str]:
    """Unicode words; each CJK character is a token on its own."""
    return _CJK_TOKEN_RE.findall(text.lower())


def contains_cjk(text: str) -> bool:
    return _CJK_CHAR_RE.search(text) is not None


TOKENIZERS: dict[str, Callable[[str], list[str]]] = {
    "rouge_score": tokenize_rouge_score,
    "cjk": tokenize_cjk,
}


def get_tokenizer(name: str) -> Callable[[str], list[str]]:
    try:
        return TOKENIZERS[name]
    except KeyError:
        raise ValueError(f"unknown dedup tokenizer {name!r}; choose one of {sorted(TOKENIZERS)}") from None


def rouge_l_f1(lcs: int, len_a: int, len_b: int) -> float:
    """rouge_score's ROUGE-L F-measure of target ``a`` and prediction ``b``, with the very same float operations."""
    if not lcs or not len_a or not len_b:
        return 0.0
    precision = lcs / len_b
    recall = lcs / len_a
    return 2 * precision * recall / (precision + recall)


def lcs_length(a: Sequence, b: Sequence) -> int:
    """Length of the longest common subsequence (bit-parallel; exact for any lengths)."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return 0
    return lcs_with_masks(token_masks(b), len(b), a)


def token_masks(seq: Sequence) -> dict:
    """Bit ``i`` of ``masks[tok]`` is set where ``seq[i] == tok`` (the LCS's match vectors)."""
    masks: dict = {}
    for i, tok in enumerate(seq):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    return masks


def lcs_with_masks(masks: dict, m: int, other: Iterable) -> int:
    """LCS of the ``m``-token sequence behind ``masks`` (see ``token_masks``) and ``other``."""
    full = (1 << m) - 1
    v = full
    get = masks.get
    for tok in other:
        u = v & get(tok, 0)
        if u:
            v = ((v + u) | (v - u)) & full
    return m - v.bit_count()
