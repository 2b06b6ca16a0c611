"""Scores of generated text against references, and of references under a model.

- ``rouge_l``: the same number as ``rouge_score``'s ``RougeScorer(["rougeL"]).score(ref, pred).fmeasure``
  (its default tokenizer: lowercase, runs of [a-z0-9]; no stemming). Pass ``tokenize`` for other
  scripts (the default tokenizer drops non-ASCII text, as rouge_score does).
- ``exact_match``: SQuAD normalisation (lowercase, no punctuation, no articles, single spaces).
- ``reference_loss``: teacher-forced loss of the reference answer (response tokens + EOS only, as
  in training), batched with left padding; per-example mean NLL and perplexity.
- ``judge_prompt`` / ``parse_judge_rating``: an LLM judge (any teacher) rates a response 1-10.
Torch is imported only by ``reference_loss``.
"""
from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from contracts.records import Example
    from worker.ml.decoding.engine import InferenceEngine

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def rouge_tokenize(text: str) -> list[str]:
    """rouge_score's default tokenizer (``tokenize.tokenize`` without stemming)."""
    return [t for t in _NON_ALNUM.sub(" ", text.lower()).split() if t]


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, start=1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(prediction: str, reference: str, tokenize: Callable[[str], list[str]] = rouge_tokenize) -> float:
    """ROUGE-L F1 of a prediction against one reference."""
    pred, ref = tokenize(prediction), tokenize(reference)
    if not pred or not ref:
        return 0.0
    lcs = lcs_length(pred, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


@dataclass
class ReferenceLoss:
    loss: float  # mean NLL per response token (nats)
    perplexity: float
    tokens: int  # response tokens scored (EOS included)


def reference_loss(engine: InferenceEngine, examples: list[Example], adapter_dir: Path | None,
                   prompt_template: str | None = None, batch_size: int = 8) -> list[ReferenceLoss]:
    """Per-example loss / perplexity of ``example.output`` given its prompt, under base or adapter.

    The prompt is rendered with the model's template; prompt and answer are tokenised together
    and the first ``len(tokenize(prompt))`` tokens are masked, as Alpaca-LoRA's training does.
    """
    import torch

    tok = engine.tokenizer
    eos = tok.eos_token_id
    seqs: list[tuple[list[int], int]] = []  # (ids, number of scored tokens at the end)
    for ex in examples:
        prompt, special = engine.render_instruction(ex.instruction, ex.input, adapter_dir, prompt_template)
        n_prompt = len(tok(prompt, add_special_tokens=special).input_ids)
        ids = tok(prompt + ex.output, add_special_tokens=special).input_ids + [eos]
        seqs.append((ids, min(max(len(ids) - n_prompt, 1), len(ids) - 1)))
    adapter = "__base__" if adapter_dir is None else engine.adapters.get(adapter_dir).name
    engine.adapters.evict({adapter})
    out: list[ReferenceLoss | None] = [None] * len(examples)
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i][0]))
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        width = max(len(seqs[i][0]) for i in chunk)
        tail = max(seqs[i][1] for i in chunk)
        ids = torch.full((len(chunk), width), engine.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for j, i in enumerate(chunk):
            row = seqs[i][0]
            ids[j, width - len(row):] = torch.tensor(row)
            mask[j, width - len(row):] = 1
        ids, mask = ids.to(engine.device), mask.to(engine.device)
        with torch.inference_mode(), engine.adapter_names([adapter] * len(chunk)):
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            # left padding puts every answer at the end: only the last ``tail`` + 1 positions need logits
            logits = engine.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                                  logits_to_keep=tail + 1).logits[:, :-1].float()
            logprobs = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, -tail:, None])[..., 0]
        for j, i in enumerate(chunk):
            n = seqs[i][1]
            nll = -logprobs[j, tail - n:].sum().item() / n
            out[i] = ReferenceLoss(nll, math.exp(min(nll, 700.0)), n)
    return out  # type: ignore[return-value]


JUDGE_PROMPT = (
    "Please act as an impartial judge and evaluate the quality of the response provided by an AI assistant "
    "to the user instruction below. A reference answer is given; judge correctness and helpfulness against it. "
    "Be as objective as possible. After a short explanation, rate the response on a scale of 1 to 10 by "
    "strictly following this format: \"[[rating]]\", for example: \"Rating: [[5]]\".\n\n"
    "[Instruction]\n{instruction}\n\n[Input]\n{input}\n\n[Reference answer]\n{reference}\n\n"
    "[Assistant's response]\n{prediction}\n"
)
_RATING = re.compile(r"\[\[(\d+(?:\.\d+)?)\]\]")
_LOOSE_RATING = re.compile(r"(?i)rating\D{0,5}(\d+(?:\.\d+)?)")


def parse_judge_rating(reply: str) -> float | None:
    """The 1-10 rating in a judge reply (``[[n]]``, or ``Rating: n``); None when absent or out of range."""
    match = _RATING.search(reply) or _LOOSE_RATING.search(reply)
    if not match:
        return None
    value = float(match.group(1))
    return value if 1 <= value <= 10 else None


def judge_prompt(instruction: str, input: str, reference: str, prediction: str) -> str:
    """Single-answer grading (MT-Bench style); the reply's rating is read by ``parse_judge_rating``."""
    return JUDGE_PROMPT.format(instruction=instruction, input=input or "(none)", reference=reference or "(none)",
                               prediction=prediction)
