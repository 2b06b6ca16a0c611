"""Prompt templates exactly as published by Alpaca-LoRA (templates/*.json) and Stanford Alpaca.

Pure functions, no tokenizer: ``render_prompt`` gives the text up to and including the response
marker; the training target is the prompt followed directly by the output (no separator).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    prompt_input: str
    prompt_no_input: str
    response_split: str


_HEAD_IN = ("Below is an instruction that describes a task, paired with an input that provides further "
            "context. Write a response that appropriately completes the request.\n\n")
_HEAD_NO = "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"

TEMPLATES: dict[str, PromptTemplate] = {
    "alpaca": PromptTemplate(
        "alpaca",
        _HEAD_IN + "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n",
        _HEAD_NO + "### Instruction:\n{instruction}\n\n### Response:\n",
        "### Response:",
    ),
    "alpaca_legacy": PromptTemplate(
        "alpaca_legacy",
        _HEAD_IN + "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:",
        _HEAD_NO + "### Instruction:\n{instruction}\n\n### Response:",
        "### Response:",
    ),
    "alpaca_short": PromptTemplate(
        "alpaca_short",
        "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n",
        "### Instruction:\n{instruction}\n\n### Response:\n",
        "### Response:",
    ),
}


def get_template(name: str) -> PromptTemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown prompt template {name!r}; choose one of {sorted(TEMPLATES)} or 'chat'") from None


def render_prompt(instruction: str, input: str = "", template: str = "alpaca") -> str:
    """The prompt up to the response marker (what the model sees at inference)."""
    t = get_template(template)
    if input:
        return t.prompt_input.format(instruction=instruction, input=input)
    return t.prompt_no_input.format(instruction=instruction)


def extract_response(text: str, template: str = "alpaca") -> str:
    """Alpaca-LoRA's ``Prompter.get_response``: the text after the response marker, stripped."""
    marker = get_template(template).response_split
    return text.split(marker, 1)[1].strip() if marker in text else text.strip()
