"""Scores of generated text against references, and of references under a model.

- ``rouge_l``: the same number as ``rouge_score``'s ``RougeScorer(["rougeL"]).score(ref, pred).fmeasure``
  (its default tokenizer: lowercase, runs of [a-z0-9]; no stemming), from the LCS and F-measure of
  ``rouge_l.py`` that the self-instruct filter uses too. Pass ``tokenize`` for other scripts (the
  default tokenizer drops non-ASCII text, as rouge_score does).
- ``exact_match``: SQuAD normalisation (lowercase, no punctuation, no articles, single spaces).
- ``reference_loss``: teacher-forced loss of the reference answer (response tokens + EOS only, as
  in training), batched with left padding; per-example mean NLL and perplexity.
- ``judge_prompt`` / ``parse_judge_rating``: an LLM judge (any teacher) rates a response 1-10.
Torch is imported only by ``reference_loss`` (through ``score_continuations``).
"""
from __future__ import annotations

import math
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from worker.ml.evaluation.rouge_l import lcs_length, rouge_l_f1, tokenize_rouge_score

if TYPE_CHECKING:
    from contracts.records import Example
    from worker.ml.decoding.engine import InferenceEngine
    from worker.ml.decoding.loaded_model import LoadedModel


def rouge_l(prediction: str, reference: str, tokenize: Callable[[str], list[str]] = tokenize_rouge_score) -> float:
    """ROUGE-L F1 of a prediction against one reference."""
    pred, ref = tokenize(prediction), tokenize(reference)
    return rouge_l_f1(lcs_length(ref, pred), len(ref), len(pred))


_STRIP_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    text = text.lower().translate(_STRIP_PUNCTUATION)
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
    seqs = [_scored_sequence(engine, ex, adapter_dir, prompt_template) for ex in examples]
    adapter = engine.loaded.adapter_name(adapter_dir)
    engine.adapters.evict({adapter})
    out: list[ReferenceLoss | None] = [None] * len(examples)
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i][0]))
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        for i, loss in zip(chunk, _chunk_losses(engine.loaded, [seqs[i] for i in chunk], adapter)):
            out[i] = loss
    return out  # type: ignore[return-value]


def _scored_sequence(engine: InferenceEngine, ex: Example, adapter_dir: Path | None,
                     prompt_template: str | None) -> tuple[list[int], int]:
    """(prompt + answer + EOS token ids, number of answer tokens scored at the end)."""
    tok = engine.tokenizer
    prompt, special = engine.render_instruction(ex.instruction, ex.input, adapter_dir, prompt_template)
    n_prompt = len(tok(prompt, add_special_tokens=special).input_ids)
    ids = tok(prompt + ex.output, add_special_tokens=special).input_ids + [tok.eos_token_id]
    return ids, min(max(len(ids) - n_prompt, 1), len(ids) - 1)


def _chunk_losses(lm: LoadedModel, seqs: list[tuple[list[int], int]], adapter: str) -> list[ReferenceLoss]:
    """Teacher-forced losses of the answers (the last ``n`` tokens of each sequence), scored by the
    engine's batched ``score_continuations``."""
    from worker.ml.decoding.scoring import ScoreItem, score_continuations

    items = [ScoreItem(ids[:-n], ids[-n:], adapter) for ids, n in seqs]
    losses = []
    for (_, n), res in zip(seqs, score_continuations(lm, items)):
        nll = -sum(res.token_logprobs) / n
        losses.append(ReferenceLoss(nll, math.exp(min(nll, 700.0)), n))
    return losses


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
