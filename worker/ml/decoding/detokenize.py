"""Incremental detokenisation with stop sequences: text deltas that never show half a UTF-8
character, nor the beginning of a stop sequence that might still complete; ``TextStream``, one
request's deltas as an iterator (``InferenceEngine.stream``)."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from contracts.decoding import DecodeResult


def find_stop(text: str, stops: list[str], start: int = 0) -> int:
    """Index of the earliest stop sequence in ``text[start:]`` (absolute), or -1."""
    hits = [i for i in (text.find(s, start) for s in stops) if i >= 0]
    return min(hits) if hits else -1


def held_back(text: str, stops: list[str]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of some stop sequence."""
    best = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:n]):
                best = n
                break
    return best


class TextAccumulator:
    """Feeds token ids one at a time; ``push`` returns the new visible text and whether a stop hit.

    Decoding uses a sliding window (prefix/read offsets), so the cost per token stays constant.
    """

    def __init__(self, tokenizer: Any, stops: list[str] | None = None) -> None:
        self.tokenizer = tokenizer
        self.stops = list(stops or [])
        self.ids: list[int] = []
        self.text = ""  # everything decoded so far
        self.emitted = 0  # characters of ``text`` already handed out
        self.stopped_at = -1  # index in ``text`` where a stop sequence begins
        self._prefix = 0
        self._read = 0

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def push(self, token_id: int) -> tuple[str, bool]:
        self.ids.append(token_id)
        prefix_text = self._decode(self.ids[self._prefix:self._read])
        new_text = self._decode(self.ids[self._prefix:])
        if len(new_text) <= len(prefix_text) or new_text.endswith("\ufffd"):
            return "", False  # an incomplete multi-byte character: wait for the next token
        search_from = max(0, len(self.text) - max((len(s) for s in self.stops), default=0))
        self.text += new_text[len(prefix_text):]
        self._prefix, self._read = self._read, len(self.ids)
        if self.stops:
            hit = find_stop(self.text, self.stops, search_from)
            if hit >= 0:
                self.stopped_at = hit
                return self._emit(hit), True
            return self._emit(len(self.text) - held_back(self.text, self.stops)), False
        return self._emit(len(self.text)), False

    def flush(self) -> str:
        """At the end of generation: whatever was held back (no stop sequence completed)."""
        if self.stopped_at >= 0:
            return ""
        if self._read < len(self.ids):  # trailing tokens that never formed a whole character
            self.text += self._decode(self.ids[self._prefix:])[len(self._decode(self.ids[self._prefix:self._read])):]
            self._prefix = self._read = len(self.ids)
        return self._emit(len(self.text))

    def _emit(self, upto: int) -> str:
        if upto <= self.emitted:
            return ""
        piece = self.text[self.emitted:upto]
        self.emitted = upto
        return piece


class TextStream:
    """Iterator of text deltas for one request; ``result`` is set once it is exhausted."""

    def __init__(self, events: Iterator[tuple[int, str]], results: list[DecodeResult]) -> None:  # (index, delta)
        self._events = events
        self._results = results
        self.result: DecodeResult | None = None

    def __iter__(self) -> TextStream:
        return self

    def __next__(self) -> str:
        for _, delta in self._events:
            if delta:
                return delta
        self.result = self._results[0]
        raise StopIteration
