"""Incremental text with stop sequences, on the real tokenizer."""
from __future__ import annotations

import pytest

from worker.ml.decoding.detokenize import TextAccumulator, held_back


@pytest.fixture(scope="module")
def tokenizer(tiny_llama_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llama_dir)


def feed(acc: TextAccumulator, ids: list[int]) -> tuple[list[str], bool]:
    parts, stopped = [], False
    for t in ids:
        piece, stopped = acc.push(t)
        parts.append(piece)
        if stopped:
            break
    if not stopped:
        parts.append(acc.flush())
    return parts, stopped


def test_deltas_add_up_to_the_decoded_text_without_broken_characters(tokenizer):
    text = "Hello, wörld! 你好，世界 🙂 — done."
    ids = tokenizer(text, add_special_tokens=False).input_ids
    parts, stopped = feed(TextAccumulator(tokenizer), ids)
    assert not stopped
    assert "".join(parts) == tokenizer.decode(ids, skip_special_tokens=True)
    assert not any("\ufffd" in p for p in parts)


def test_stop_sequence_is_cut_and_its_prefix_never_shown(tokenizer):
    ids = tokenizer("alpha beta ### Instruction: gamma", add_special_tokens=False).input_ids
    acc = TextAccumulator(tokenizer, ["### Instruction"])
    parts, stopped = feed(acc, ids)
    assert stopped and "".join(parts) == "alpha beta "
    assert acc.text[:acc.stopped_at] == "alpha beta "


def test_held_back_suffix():
    assert held_back("abc ##", ["###"]) == 2
    assert held_back("abc", ["###"]) == 0
