"""Every instruction and instance filter, with the published thresholds and keyword lists."""
from __future__ import annotations

import pytest

from contracts.configs import GenerationFilters
from worker.ml.evaluation.rouge_l import tokenize_cjk
from worker.ml.selfinstruct.filters import (
    ALPACA_BLACKLIST,
    SELF_INSTRUCT_BLACKLIST,
    InstructionFilter,
    dedupe_instances,
    has_conflicting_instances,
    invalid_instance_reason,
)

SI = InstructionFilter("self_instruct", GenerationFilters())
AL = InstructionFilter("alpaca", GenerationFilters())


def test_keyword_lists_are_the_published_ones():
    assert len(SELF_INSTRUCT_BLACKLIST) == 13 and len(ALPACA_BLACKLIST) == 18
    assert set(ALPACA_BLACKLIST) - set(SELF_INSTRUCT_BLACKLIST) == {"video", "audio", "music", "flowchart", "diagram"}


@pytest.mark.parametrize("inst, reason", [
    ("", "empty"),
    ("Three words only", "word_count"),
    ("Four words are enough", None),
    (" ".join(["word"] * 150), None),
    (" ".join(["word"] * 151), "word_count"),
    ("Draw a cat for my sister please", "blacklist"),
    ("Describe the IMAGES in the report", "blacklist"),
    ("Explain how to go to the station", "blacklist"),
    ("Explain the drawing style of Monet", None),  # whole words only
    ("Summarize the plotline of Hamlet", None),
    ("Write a program that sorts numbers", "write_a_program"),
    ("Write a Python program that sorts numbers", None),  # case-sensitive prefix, as published
    ("write a program that sorts numbers", None),
    ("\"Quote\" the first line of a poem", "punctuation_start"),
    ("¿Qué hora es ahora en Madrid?", "non_ascii_start"),
    ("请把下面的句子翻译成英文", "word_count"),  # one whitespace word
])
def test_self_instruct_instruction_filters(inst, reason):
    assert SI.rejection(inst) == reason


def test_alpaca_extra_blacklist_words():
    assert AL.rejection("Compose music for a short film scene") == "blacklist"
    assert SI.rejection("Compose music for a short film scene") is None
    assert AL.rejection("Make a flowchart of the sign-up process") == "blacklist"


def test_toggles_and_multilingual_settings():
    relaxed = InstructionFilter("self_instruct", GenerationFilters(
        count_words_by="tokens", drop_non_ascii_start=False, blacklist=False, extra_blacklist=["banana"]),
        count_tokens=lambda s: len(tokenize_cjk(s)))
    assert relaxed.rejection("请把下面的句子翻译成英文") is None
    assert relaxed.rejection("Draw a cat for my sister please") is None
    assert relaxed.rejection("Peel a Banana for the kids now") == "blacklist"
    assert "non_ascii_start" not in relaxed.applied()
    with pytest.raises(ValueError):
        InstructionFilter("self_instruct", GenerationFilters(count_words_by="tokens"))


def test_invalid_instances():
    assert invalid_instance_reason("same", "same") == "input equals output"
    assert invalid_instance_reason("x", "") == "empty output"
    assert invalid_instance_reason("Sentence:", "Positive") == "field ends with ':'"
    assert invalid_instance_reason("x", "Answer: ") == "field ends with ':'"
    assert invalid_instance_reason("", "Paris") is None


def test_conflicts_and_duplicates():
    assert has_conflicting_instances([("x", "1"), ("x", "2")])
    assert not has_conflicting_instances([("", "1"), ("", "2"), ("x", "1"), ("x", "1")])
    unique, dupes = dedupe_instances([("a", "1"), ("b", "2"), ("a", "1")])
    assert unique == [("a", "1"), ("b", "2")] and dupes == [("a", "1")]
