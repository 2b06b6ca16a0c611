"""The prompt and the published decoding settings of each step of both pipelines (pure functions);
the few-shot texts they are built from are in ``published_templates.py``.

Self-Instruct (yizhongw/self-instruct): step 1 numbered-list bootstrapping, step 2 "is it
classification?", step 3 output-first / input-first instance generation. Alpaca
(tatsu-lab/stanford_alpaca): ``prompt.txt`` + 3 seed examples in ``###`` blocks.
"""
from __future__ import annotations

import re

from worker.ml.selfinstruct.published_templates import (
    ALPACA_PROMPT_TXT,
    CLF_TEMPLATE,
    INPUT_FIRST_TEMPLATE_FOR_GEN,
    OUTPUT_FIRST_TEMPLATE_FOR_CLF,
    template_hash,
)
from worker.ml.teachers.interface import DecodingParams

SELF_INSTRUCT_HEADER = "Come up with a series of tasks:\n"
SELF_INSTRUCT_CLF_HEADER = (
    "Come up with a series of classification tasks. Try to specify the possible output labels when possible.\n"
)

# Published decoding settings (spec section 6; Alpaca section 2). logprobs/n/best_of are not sent.
BOOTSTRAP_PARAMS = DecodingParams(max_tokens=1024, temperature=0.7, top_p=0.5, stop=("\n\n", "\n16", "16.", "16 ."),
                                  presence_penalty=2.0)
CLF_PARAMS = DecodingParams(max_tokens=3, temperature=0.0, top_p=0.0, stop=("\n", "Task"))
ALPACA_PARAMS = DecodingParams(max_tokens=3072, temperature=1.0, top_p=1.0, stop=("\n20", "20.", "20."))

TEMPLATE_HASHES = {
    "self_instruct.bootstrap": template_hash(SELF_INSTRUCT_HEADER),
    "self_instruct.bootstrap_clf": template_hash(SELF_INSTRUCT_CLF_HEADER),
    "self_instruct.is_clf": template_hash(CLF_TEMPLATE),
    "self_instruct.instances_clf": template_hash(OUTPUT_FIRST_TEMPLATE_FOR_CLF),
    "self_instruct.instances_gen": template_hash(INPUT_FIRST_TEMPLATE_FOR_GEN),
    "alpaca.generate": template_hash(ALPACA_PROMPT_TXT),
}


def encode_instruction(instruction: str) -> str:
    """Both pipelines: collapse whitespace, strip, drop a trailing colon."""
    return re.sub(r"\s+", " ", instruction).strip().rstrip(":")


def build_bootstrap_prompt(instructions: list[str], classification: bool = False) -> str:
    """Self-Instruct step 1: header, ``1. ...`` to ``8. ...``, then ``9.`` (no trailing space)."""
    prompt = SELF_INSTRUCT_CLF_HEADER if classification else SELF_INSTRUCT_HEADER
    for idx, inst in enumerate(instructions):
        prompt += f"{idx + 1}. {encode_instruction(inst)}\n"
    return prompt + f"{len(instructions) + 1}."


def build_is_clf_prompt(instruction: str) -> str:
    """Self-Instruct step 2."""
    return CLF_TEMPLATE + " " + instruction.strip() + "\n" + "Is it classification?"


def build_instances_prompt(instruction: str, is_classification: bool) -> str:
    """Self-Instruct step 3: output-first for classification tasks, input-first otherwise."""
    template = OUTPUT_FIRST_TEMPLATE_FOR_CLF if is_classification else INPUT_FIRST_TEMPLATE_FOR_GEN
    return template + " " + instruction.strip() + "\n"


def instances_params(batch_has_clf: bool, max_instances: int) -> DecodingParams:
    """Step 3 decoding: 300 tokens when the request batch holds a classification task, else 350."""
    return DecodingParams(max_tokens=300 if batch_has_clf else 350, temperature=0.0, top_p=0.0,
                          stop=(f"Example {max_instances + 1}", "Task:"), presence_penalty=1.5)


def build_alpaca_prompt(seed_examples: list[dict]) -> str:
    """Alpaca: ``prompt.txt`` + ``\\n`` + one ``###`` block per example + ``###\\n{n+1}. Instruction:``."""
    prompt = ALPACA_PROMPT_TXT + "\n"
    for idx, task in enumerate(seed_examples):
        instruction = encode_instruction(task["instruction"])
        inp = "<noinput>" if task["input"].lower() == "" else task["input"]
        prompt += "###\n"
        prompt += f"{idx + 1}. Instruction: {instruction}\n"
        prompt += f"{idx + 1}. Input:\n{inp}\n"
        prompt += f"{idx + 1}. Output:\n{task['output']}\n"
    return prompt + "###\n" + f"{len(seed_examples) + 1}. Instruction:"


def with_overrides(params: DecodingParams, temperature: float | None, top_p: float | None,
                   max_tokens: int | None) -> DecodingParams:
    """Apply a job's teacher overrides to the instruction-writing step's published params."""
    return DecodingParams(
        max_tokens=max_tokens if max_tokens is not None else params.max_tokens,
        temperature=temperature if temperature is not None else params.temperature,
        top_p=top_p if top_p is not None else params.top_p,
        stop=params.stop, presence_penalty=params.presence_penalty, frequency_penalty=params.frequency_penalty,
    )
