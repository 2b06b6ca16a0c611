"""Parsing of teacher completions, as the published pipelines parse them (quirks included).

Self-Instruct step 1 splits on ``\\n<number>. `` and capitalises (``str.capitalize`` lower-cases
the rest); a truncated (``finish_reason == "length"``) or missing response is discarded whole.
Alpaca re-attaches ``4. Instruction:``, splits on ``###``, and each block must carry the expected
number and split into exactly 7 parts; only a truncated *last* block is skipped.
Steps 2-3 of Self-Instruct: the yes/no answer and the instances of a task.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_BOOTSTRAP_SPLIT_RE = re.compile(r"\n\d+\s?\. ")
_EXAMPLE_RE = re.compile(r"Example\s?\d*\.?")
_OUTPUT_RE = re.compile(r"Output\s*\d*\s*:")
_INPUT_RE = re.compile(r"Input\s*\d*\s*:")
_LEADING_INPUT_RE = re.compile(r"^Input\s*\d*\s*:")


def parse_bootstrap_response(text: str | None, finish_reason: str | None) -> list[str] | None:
    """Candidate instructions from a step-1 completion; None when the whole response is dropped."""
    if text is None or finish_reason in ("length", "error"):
        return None
    return [re.sub(r"\s+", " ", piece).strip().capitalize() for piece in _BOOTSTRAP_SPLIT_RE.split(text)]


@dataclass(frozen=True)
class AlpacaItem:
    instruction: str
    input: str
    output: str


def parse_alpaca_response(text: str | None, finish_reason: str | None,
                          num_prompt_instructions: int = 3) -> tuple[list[AlpacaItem], list[str]]:
    """(items, unparseable blocks) of an Alpaca completion; filters are applied separately."""
    if text is None or finish_reason == "error":
        return [], []
    raw = f"{num_prompt_instructions + 1}. Instruction:" + text
    blocks = re.split("###", raw)
    items, bad = [], []
    for k, block in enumerate(blocks):
        if k == len(blocks) - 1 and finish_reason == "length":
            continue  # the truncated last block
        number = k + num_prompt_instructions + 1
        parts = re.split(rf"{number}\.\s+(Instruction|Input|Output):", block)
        if len(parts) != 7:
            if block.strip():
                bad.append(block.strip())
            continue
        inp = parts[4].strip()
        items.append(AlpacaItem(parts[2].strip(), "" if inp.lower() == "<noinput>" else inp, parts[6].strip()))
    return items, bad


def parse_is_clf(text: str | None) -> bool:
    """Step 2: only an answer of Yes/yes/YES (after strip) means classification."""
    return (text or "").strip() in ("Yes", "yes", "YES")


def _parse_input_output(text: str) -> tuple[str, str]:
    if _OUTPUT_RE.search(text):
        pieces = _OUTPUT_RE.split(text)
        inp, out = pieces[0].strip(), pieces[1].strip()
    else:
        inp, out = "", text.strip()
    if _INPUT_RE.search(out):
        out = _INPUT_RE.split(out)[0].strip()
    inp = _LEADING_INPUT_RE.sub("", inp).strip()
    return inp, out


def parse_generation_instances(text: str | None, finish_reason: str | None) -> list[tuple[str, str]]:
    """Step 3, input-first tasks: ``(input, output)`` pairs; a truncated last one is dropped."""
    raw = (text or "").strip()
    if _EXAMPLE_RE.search(raw):
        pieces = [p.strip() for p in _EXAMPLE_RE.split(raw) if p.strip() != ""]
        instances = [_parse_input_output(p) for p in pieces]
    elif _OUTPUT_RE.search(raw):
        instances = [_parse_input_output(raw)]
    else:
        return []
    if finish_reason == "length":
        instances = instances[:-1]
    return [(i.strip(), o.strip()) for i, o in instances]


def parse_classification_instances(text: str | None, finish_reason: str | None) -> list[tuple[str, str]]:
    """Step 3, output-first tasks: each ``Class label:`` line is the output, the rest its input."""
    raw = text or ""
    if "Class label:" not in raw:
        return []
    instances = []
    for piece in raw.split("Class label:")[1:]:
        fields = piece.strip().split("\n", 1)
        label = fields[0].strip()
        inp = fields[1].strip() if len(fields) == 2 else ""
        instances.append((inp, label))
    if finish_reason == "length":
        instances = instances[:-1]
    return instances
