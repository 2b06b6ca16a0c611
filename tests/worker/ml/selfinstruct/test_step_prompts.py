"""Prompt shapes and decoding settings of both published pipelines."""
from __future__ import annotations

from dataclasses import replace

from worker.ml.selfinstruct.published_templates import ALPACA_PROMPT_TXT, CLF_TEMPLATE
from worker.ml.selfinstruct.step_prompts import (
    ALPACA_PARAMS,
    BOOTSTRAP_PARAMS,
    CLF_PARAMS,
    build_alpaca_prompt,
    build_bootstrap_prompt,
    build_instances_prompt,
    build_is_clf_prompt,
    instances_params,
    with_overrides,
)


def test_bootstrap_prompt_numbering_and_no_trailing_space():
    p = build_bootstrap_prompt([f"Task {i}:  with  spaces:" for i in range(8)])
    lines = p.split("\n")
    assert lines[0] == "Come up with a series of tasks:"
    assert lines[1] == "1. Task 0:  with  spaces".replace("  ", " ")
    assert lines[8] == "8. Task 7: with spaces" and lines[9] == "9." and p.endswith("\n9.")
    clf = build_bootstrap_prompt(["A b c d"], classification=True)
    assert clf.startswith("Come up with a series of classification tasks. Try to specify the possible output "
                          "labels when possible.\n1. A b c d\n2.")


def test_step2_and_step3_prompts():
    assert CLF_TEMPLATE.endswith("\n\nTask:") and CLF_TEMPLATE.count("Is it classification?") >= 20
    assert build_is_clf_prompt(" Sort the list. ") == CLF_TEMPLATE + " Sort the list.\nIs it classification?"
    gen = build_instances_prompt("Sort the list.", False)
    clf = build_instances_prompt("Is it spam?", True)
    assert gen.startswith("Come up with examples for the following tasks.") and gen.endswith("Task: Sort the list.\n")
    assert clf.startswith("Given the classification task definition") and clf.endswith("Task: Is it spam?\n")


def test_alpaca_prompt_shape():
    seeds = [{"instruction": "Say hi:", "input": "", "output": "Hi"},
             {"instruction": "Add  numbers", "input": "1, 2", "output": "3"},
             {"instruction": "Name a colour", "input": "", "output": "Red"}]
    p = build_alpaca_prompt(seeds)
    assert p.startswith(ALPACA_PROMPT_TXT + "\n###\n1. Instruction: Say hi\n1. Input:\n<noinput>\n1. Output:\nHi\n")
    assert "2. Instruction: Add numbers\n2. Input:\n1, 2\n2. Output:\n3\n###\n" in p
    assert p.endswith("###\n4. Instruction:")
    assert "instrucitons" in ALPACA_PROMPT_TXT and "necssary" in ALPACA_PROMPT_TXT  # kept as published


def test_published_decoding_settings():
    assert (BOOTSTRAP_PARAMS.max_tokens, BOOTSTRAP_PARAMS.temperature, BOOTSTRAP_PARAMS.top_p,
            BOOTSTRAP_PARAMS.presence_penalty) == (1024, 0.7, 0.5, 2.0)
    assert BOOTSTRAP_PARAMS.stop == ("\n\n", "\n16", "16.", "16 .")
    assert (CLF_PARAMS.max_tokens, CLF_PARAMS.temperature, CLF_PARAMS.stop) == (3, 0.0, ("\n", "Task"))
    assert instances_params(True, 5).max_tokens == 300 and instances_params(False, 5).max_tokens == 350
    assert instances_params(False, 5).stop == ("Example 6", "Task:") and instances_params(True, 5).presence_penalty == 1.5
    assert (ALPACA_PARAMS.max_tokens, ALPACA_PARAMS.temperature, ALPACA_PARAMS.top_p) == (3072, 1.0, 1.0)
    assert with_overrides(ALPACA_PARAMS, 0.2, None, 500) == replace(ALPACA_PARAMS, temperature=0.2, max_tokens=500)
