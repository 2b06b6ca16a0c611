"""Instruction and instance filters of the published pipelines, returning *why* a row is dropped.

Instruction filters, in the published order (the first match drops the candidate):
``empty`` -> ``word_count`` (<= 3 or > 150 words) -> ``blacklist`` (whole word, case-insensitive)
-> ``write_a_program`` (case-sensitive prefix) -> ``punctuation_start`` -> ``non_ascii_start``.
The ROUGE-L filter (``rouge_l``) runs after these, in the pipeline.
Self-Instruct instance filters (step 4): ``invalid_instance``, ``conflicting_instances``
(same non-empty input, different outputs: the whole task goes), ``duplicate_instance``.
"""
from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence

from contracts.configs import GenerationFilters

SELF_INSTRUCT_BLACKLIST: tuple[str, ...] = (
    "image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps", "draw", "plot",
    "go to",
)
ALPACA_BLACKLIST: tuple[str, ...] = SELF_INSTRUCT_BLACKLIST + ("video", "audio", "music", "flowchart", "diagram")

INSTRUCTION_FILTERS = ("empty", "word_count", "blacklist", "write_a_program", "punctuation_start", "non_ascii_start")


def _word_re(word: str) -> re.Pattern:
    return re.compile(rf"\b({re.escape(word)})\b", flags=re.IGNORECASE)


class InstructionFilter:
    """The published instruction filters with a job's toggles; ``rejection(inst)`` names the first hit."""

    def __init__(self, method: str, filters: GenerationFilters,
                 count_tokens: Callable[[str], int] | None = None):
        self.filters = filters
        words = (ALPACA_BLACKLIST if method == "alpaca" else SELF_INSTRUCT_BLACKLIST) if filters.blacklist else ()
        self._blacklist = [_word_re(w) for w in (*words, *filters.extra_blacklist)]
        if filters.count_words_by == "tokens" and count_tokens is None:
            raise ValueError("count_words_by='tokens' needs a token counter")
        self._count = count_tokens if filters.count_words_by == "tokens" else (lambda s: len(s.split()))

    def rejection(self, inst: str) -> str | None:
        f = self.filters
        if inst == "":
            return "empty"
        n = self._count(inst)
        if n < f.min_words or n > f.max_words:
            return "word_count"
        if any(p.search(inst) for p in self._blacklist):
            return "blacklist"
        if f.drop_write_a_program and inst.startswith("Write a program"):
            return "write_a_program"
        if f.drop_punctuation_start and inst[0] in string.punctuation:
            return "punctuation_start"
        if f.drop_non_ascii_start and not inst[0].isascii():
            return "non_ascii_start"
        return None

    def applied(self) -> list[str]:
        """Names of the filters this job runs (for per-row verdicts)."""
        f = self.filters
        names = ["empty", "word_count"]
        names += ["blacklist"] if self._blacklist else []
        names += ["write_a_program"] if f.drop_write_a_program else []
        names += ["punctuation_start"] if f.drop_punctuation_start else []
        names += ["non_ascii_start"] if f.drop_non_ascii_start else []
        return names


def invalid_instance_reason(inp: str, out: str) -> str | None:
    """Step 4 ``filter_invalid_instances``: input == output, empty output, a field ending in ':'."""
    if inp == out:
        return "input equals output"
    if out == "":
        return "empty output"
    if inp.strip().endswith(":") or out.strip().endswith(":"):
        return "field ends with ':'"
    return None


def has_conflicting_instances(instances: Sequence[tuple[str, str]]) -> bool:
    """Two instances with the same non-empty input but different outputs."""
    seen: dict[str, str] = {}
    for inp, out in instances:
        if inp != "" and seen.setdefault(inp, out) != out:
            return True
    return False


def dedupe_instances(instances: Sequence[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(unique, duplicates), first occurrence kept (the original's ``set`` scrambled the order)."""
    unique, dupes, seen = [], [], set()
    for pair in instances:
        (dupes if pair in seen else unique).append(pair)
        seen.add(pair)
    return unique, dupes
