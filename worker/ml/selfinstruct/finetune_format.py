"""Self-Instruct step 4's GPT-3 fine-tuning encoding: instances -> ``{prompt, completion}`` pairs.

As published (prepare_for_finetuning.py): per instance, with probability 0.5 a lone field name
(``Sentence: ...``) is removed from the input; blank lines in the input become single newlines;
one of 7 (with input) or 6 (without input) templates is drawn at random; exact duplicate pairs are
dropped (first kept) and the result is shuffled. Completions end with ``<|endoftext|>`` verbatim.
lorafleet's own fine-tuning takes the instruction/input/output rows; this is the export for
prompt/completion consumers.
"""
from __future__ import annotations

import random
import re

ENCODING_TEMPLATES_W_INPUT: list[tuple[str, str]] = [
    ("{instruction}\nInput: {input}\nOutput:", " {output}<|endoftext|>"),
    ("{instruction}\n\nInput: {input}\n\nOutput:", " {output}<|endoftext|>"),
    ("Task: {instruction}\nInput: {input}\nOutput:", " {output}<|endoftext|>"),
    ("{instruction}\n\n{input}\n\nOutput:", " {output}<|endoftext|>"),
    ("{instruction}\n\n{input}\n\n", "{output}<|endoftext|>"),
    ("{instruction}\n{input}\n\n", "{output}<|endoftext|>"),
    ("Task: {instruction}\n\n{input}\n\n", "{output}<|endoftext|>"),
]
ENCODING_TEMPLATES_WO_INPUT: list[tuple[str, str]] = [
    ("{instruction} Output:", " {output}<|endoftext|>"),
    ("{instruction}\nOutput:", " {output}<|endoftext|>"),
    ("{instruction}\n\nOutput:", " {output}<|endoftext|>"),
    ("{instruction}\n", "{output}<|endoftext|>"),
    ("{instruction}\n\n", "{output}<|endoftext|>"),
    ("Task: {instruction}\n\n", "{output}<|endoftext|>"),
]


def encode_instance(instruction: str, inp: str, output: str, rng: random.Random) -> dict:
    """One instance as a ``{prompt, completion}`` pair with a randomly drawn template."""
    if rng.random() < 0.5:
        names = re.findall(r"(\w+):", inp)
        if len(set(names)) == 1:
            inp = inp.split(":", 1)[1].strip()
    inp = inp.replace("\n\n", "\n")
    templates = ENCODING_TEMPLATES_W_INPUT if inp.strip() != "" else ENCODING_TEMPLATES_WO_INPUT
    prompt_t, completion_t = rng.choice(templates)
    return {"prompt": prompt_t.format(instruction=instruction.strip(), input=inp.strip()),
            "completion": completion_t.format(output=output.strip())}


def to_prompt_completion(rows: list[dict], seed: int = 123) -> list[dict]:
    """Encode instruction/input/output rows; duplicates dropped (first kept), then shuffled."""
    rng = random.Random(seed)
    pairs, seen = [], set()
    for row in rows:
        pair = encode_instance(row["instruction"], row.get("input", ""), row["output"], rng)
        key = (pair["prompt"], pair["completion"])
        if key not in seen:
            seen.add(key)
            pairs.append(pair)
    rng.shuffle(pairs)
    return pairs
