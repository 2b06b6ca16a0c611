"""Multiple-choice scoring of eval rows from loglikelihoods, the way lm-evaluation-harness does it.

For each (row, model) the row is rendered in the model's prompt template (as for generation), and
every choice is scored as a continuation of that prompt by ``score_continuations`` (all rows, choices
and adapters of a chunk in one batched call). As lm-eval's ``multiple_choice`` tasks do:
- trailing whitespace of the context moves to the front of the continuation, the context and the
  whole text are tokenised and the continuation is the whole text's tokens after the context's;
  a context too long for the model loses tokens from its left;
- ``acc``: the choice with the highest summed log-probability is the answer;
- ``acc_norm``: the highest summed log-probability divided by the choice's length in characters
  (lm-eval's ``completion_len``; ``len(choice)``).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from contracts.decoding import ModelTarget
from worker.ml.decoding.scoring import ScoreItem, score_continuations

if TYPE_CHECKING:
    from contracts.records import Example
    from worker.ml.decoding.engine import InferenceEngine

Pair = tuple[int, int]  # (example index, target index)


@dataclass
class ChoiceScores:
    logprobs: list[float]  # summed log-probability of each choice
    predicted: int  # argmax of logprobs
    predicted_norm: int  # argmax of logprobs / len(choice)
    acc: float
    acc_norm: float

    def as_dict(self) -> dict[str, Any]:
        return {"choice_logprobs": self.logprobs, "predicted": self.predicted, "predicted_norm": self.predicted_norm,
                "acc": self.acc, "acc_norm": self.acc_norm}


def choice_scores(choices: list[str], answer: int, logprobs: list[float]) -> ChoiceScores:
    """``acc`` / ``acc_norm`` of one row from its choices' summed log-probabilities (first maximum wins)."""
    predicted = max(range(len(logprobs)), key=logprobs.__getitem__)
    normed = [lp / len(c) for lp, c in zip(logprobs, choices)]
    predicted_norm = max(range(len(normed)), key=normed.__getitem__)
    return ChoiceScores(list(logprobs), predicted, predicted_norm, float(predicted == answer),
                        float(predicted_norm == answer))


def split_pair(tokenizer: Any, context: str, continuation: str, add_special_tokens: bool = True
               ) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) as lm-eval's causal models split a pair."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = tokenizer(context + continuation, add_special_tokens=add_special_tokens).input_ids
    ctx = tokenizer(context, add_special_tokens=add_special_tokens).input_ids
    return ctx, whole[len(ctx):]


def choice_items(engine: InferenceEngine, example: Example, target: ModelTarget) -> list[ScoreItem]:
    """One ``ScoreItem`` per choice of a row, prompted the way ``target`` was trained."""
    context, special = engine.render_instruction(example.instruction, example.input, target.adapter_dir,
                                                 target.prompt_template)
    adapter = engine.loaded.adapter_name(target.adapter_dir)
    items = []
    for choice in example.choices or []:
        ctx, cont = split_pair(engine.tokenizer, context, choice, special)
        keep = max(1, engine.max_positions - len(cont))
        items.append(ScoreItem(ctx[-keep:], cont[:engine.max_positions - 1], adapter))
    return items


def score_choices(engine: InferenceEngine, examples: list[Example], targets: list[ModelTarget],
                  chunk_rows: int = 256, should_stop: Callable[[], bool] = lambda: False
                  ) -> tuple[dict[Pair, ChoiceScores | str], bool]:
    """({(row, model): scores, or an error message}, stopped) for every multiple-choice row and model;
    ``chunk_rows`` (row, model) pairs share one scoring call; ``should_stop`` is polled between calls."""
    pairs = [(i, t) for i, ex in enumerate(examples) if ex.choices for t in range(len(targets))]
    out: dict[Pair, ChoiceScores | str] = {}
    for start in range(0, len(pairs), chunk_rows):
        if should_stop():
            return out, True
        chunk, items, spans = pairs[start:start + chunk_rows], [], []
        for i, t in chunk:
            try:
                row_items = choice_items(engine, examples[i], targets[t])
            except Exception as exc:  # noqa: BLE001 - e.g. an adapter folder that cannot be read
                out[(i, t)] = str(exc)
                continue
            spans.append(((i, t), len(items), len(items) + len(row_items)))
            items += row_items
        engine.adapters.evict({it.adapter for it in items})
        results = score_continuations(engine.loaded, items, engine.max_batch_tokens)
        for (i, t), begin, end in spans:
            ex = examples[i]
            out[(i, t)] = choice_scores(ex.choices, ex.answer, [r.logprob for r in results[begin:end]])
    return out, False
