"""Self-Instruct's prompt/completion export."""
from __future__ import annotations

import random

from worker.ml.selfinstruct.finetune_format import (
    ENCODING_TEMPLATES_W_INPUT,
    ENCODING_TEMPLATES_WO_INPUT,
    encode_instance,
    to_prompt_completion,
)


def test_templates_as_published():
    assert len(ENCODING_TEMPLATES_W_INPUT) == 7 and len(ENCODING_TEMPLATES_WO_INPUT) == 6
    assert all(c.endswith("<|endoftext|>") for _, c in ENCODING_TEMPLATES_W_INPUT + ENCODING_TEMPLATES_WO_INPUT)


def test_field_name_stripped_about_half_the_time_and_blank_lines_collapsed():
    rng = random.Random(0)
    pairs = [encode_instance("Classify it.", "Sentence: I like it.\n\nReally.", "Positive", rng) for _ in range(400)]
    stripped = sum("Sentence:" not in p["prompt"] for p in pairs)
    assert 150 < stripped < 250
    assert all("I like it.\nReally." in p["prompt"] for p in pairs)
    two_fields = encode_instance("Compare.", "A: x\nB: y", "same", random.Random(1))
    assert "A: x" in two_fields["prompt"]  # more than one field name: left alone


def test_no_input_templates_and_dedupe():
    rows = [{"instruction": " Name a colour. ", "input": "", "output": "Red"}] * 50
    pairs = to_prompt_completion(rows, seed=3)
    assert 1 < len(pairs) <= 6 and len({(p["prompt"], p["completion"]) for p in pairs}) == len(pairs)
    assert all(p["prompt"].startswith(("Name a colour.", "Task: Name a colour.")) for p in pairs)
    assert to_prompt_completion(rows, seed=3) == pairs
