"""In-process fake teachers for pipeline tests (parsing/driver logic; the real HTTP path is tested
in tests/worker/ml/test_teacher.py and test_pipeline.py's end-to-end test).

``answer(prompt)`` writes a deterministic, well-formed completion for each prompt kind of both
pipelines, with a few planted defects (blacklisted words, near-duplicates of seeds, short items,
a conflicting instance pair) so every filter has something to do.
"""
from __future__ import annotations

import hashlib
import random
import re

import pytest

from worker.ml.selfinstruct.published_templates import ALPACA_PROMPT_TXT, CLF_TEMPLATE
from worker.ml.teachers.interface import TeacherResponse

VERBS = ["Describe", "Explain", "Summarize", "Compare", "List", "Classify", "Rewrite", "Translate", "Evaluate",
         "Suggest", "Outline", "Identify", "Predict", "Estimate", "Design", "Critique"]
NOUNS = ["volcano", "budget", "poem", "recipe", "garden", "contract", "river", "museum", "engine", "habit",
         "festival", "satellite", "orchestra", "glacier", "startup", "library", "vaccine", "bridge", "desert",
         "election", "harbor", "keyboard", "lantern", "meadow", "novel", "pharmacy", "quarry", "rainforest"]
ADJ = ["ancient", "tiny", "noisy", "modern", "rural", "fragile", "famous", "hidden", "urban", "frozen", "bright"]
TAILS = ["for a curious teenager", "in three sentences", "using simple words", "as a short list", "with one example",
         "for a busy manager", "in a friendly tone", "from two points of view"]


def _rng(prompt: str) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "big"))


def fake_instruction(rng: random.Random) -> str:
    return (f"{rng.choice(VERBS)} the {rng.choice(ADJ)} {rng.choice(NOUNS)} and the {rng.choice(ADJ)} "
            f"{rng.choice(NOUNS)} {rng.choice(TAILS)}.")


def answer(prompt: str) -> tuple[str, str]:
    """(text, finish_reason) for any prompt of either pipeline."""
    rng = _rng(prompt)
    if prompt.startswith(ALPACA_PROMPT_TXT):
        return _alpaca_answer(prompt, rng)
    if prompt.startswith(CLF_TEMPLATE[:60]):
        task = prompt[len(CLF_TEMPLATE):].split("\n")[0]
        return (" Yes" if task.strip().startswith("Classify") else " No"), "stop"
    if prompt.startswith("Given the classification task definition"):
        text = ("Class label: Positive\nSentence: I like it.\nClass label: Negative\nSentence: I hate it.\n"
                "Class label: Neutral\nSentence: It is a chair.")
        return text, "stop"
    if prompt.startswith("Come up with examples"):
        task = prompt.rstrip("\n").rsplit("Task:", 1)[1]
        if "volcano" in task:  # same input, different outputs: the whole task is dropped
            return "Example 1\nInput: x\nOutput: one\nExample 2\nInput: x\nOutput: two", "stop"
        text = (f"Example 1\nInput: case {rng.randrange(100)}\nOutput: answer A\nExample 2\nInput: case two\n"
                "Output: answer B\nExample 3\nInput: case two\nOutput: answer B\nExample 4\nInput: bad\nOutput:")
        return text, "stop"
    if prompt.startswith("Come up with a series"):
        n = int(re.search(r"(\d+)\.$", prompt).group(1))
        seeds = re.findall(r"^\d+\. (.*)$", prompt, flags=re.MULTILINE)
        items = [fake_instruction(rng) for _ in range(5)]
        items += ["Draw a picture of the ocean at night.", "Too short", seeds[0] + " now",
                  "Write a program that prints hello world.", "¿Qué hora es en Madrid ahora mismo?"]
        rng.shuffle(items)
        text = " " + items[0] + "".join(f"\n{n + i}. {it}" for i, it in enumerate(items[1:], start=1))
        return text, "stop"
    raise AssertionError(f"unexpected prompt: {prompt[:80]!r}")


def _alpaca_answer(prompt: str, rng: random.Random) -> tuple[str, str]:
    blocks = []
    seed_inst = re.search(r"^1\. Instruction: (.*)$", prompt, flags=re.MULTILINE).group(1)
    for k in range(4, 12):
        inst = fake_instruction(rng)
        if k == 6:
            inst = "Make a video about cats."
        if k == 7:
            inst = seed_inst
        inp = "<noinput>" if k % 2 else f"input number {rng.randrange(1000)}"
        head = "" if k == 4 else f"{k}. Instruction: "
        blocks.append(f"{head}{' ' if k == 4 else ''}{inst}\n{k}. Input:\n{inp}\n{k}. Output:\nanswer {k}\n")
    blocks.append("12. Instruction: broken block without the other parts\n")
    return "###\n".join(blocks), "stop"


class ScriptedTeacher:
    """Answers with ``answer``; records every request id it was asked to send."""

    model = "scripted-teacher"

    def __init__(self, price_per_request: float = 0.0, fail_after: int | None = None):
        self.sent: list[str] = []
        self.price = price_per_request
        self.fail_after = fail_after

    def complete(self, requests, on_response=None):
        out = []
        for req in requests:
            if self.fail_after is not None and len(self.sent) >= self.fail_after:
                raise RuntimeError("worker killed")
            self.sent.append(req.request_id)
            text, finish = answer(req.prompt)
            resp = TeacherResponse(req.request_id, text, finish, prompt_tokens=len(req.prompt) // 4,
                                   completion_tokens=len(text) // 4, cost_usd=self.price, model=self.model)
            if on_response:
                on_response(resp)
            out.append(resp)
        return out

    def estimate_cost(self, request) -> float:
        return self.price


@pytest.fixture()
def scripted_teacher():
    return ScriptedTeacher()
