"""Run an eval set over several models through the engine.

``run_eval`` generates every example with every model target (rows of different adapters share
batches), scores them and returns one report: a score table per model and the outputs side by side.
Multiple-choice rows are also scored from loglikelihoods (metrics ``acc`` / ``acc_norm``,
``multiple_choice.py``); a job with none of the generation metrics generates nothing.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from contracts.configs import SamplingParams
from contracts.decoding import DecodeRequest, DecodeResult, ModelTarget
from contracts.prompts import render_prompt
from worker.ml.decoding.request_prompts import CHAT_TEMPLATE, instruction_message
from worker.ml.evaluation.multiple_choice import ChoiceScores, score_choices
from worker.ml.evaluation.scoring import (
    ReferenceLoss,
    exact_match,
    judge_prompt,
    parse_judge_rating,
    reference_loss,
    rouge_l,
)

if TYPE_CHECKING:
    from contracts.records import Example
    from worker.ml.decoding.engine import InferenceEngine


def eval_request(engine: InferenceEngine, example: Example, target: ModelTarget,
                 sampling: SamplingParams) -> DecodeRequest:
    """An eval row rendered the way ``target`` was trained (chat template, or an Alpaca template)."""
    template = target.prompt_template or engine.prompt_template_for(target.adapter_dir)
    knobs = sampling.model_dump()
    if template == CHAT_TEMPLATE:
        return DecodeRequest(messages=[instruction_message(example.instruction, example.input)],
                             adapter_dir=target.adapter_dir, prompt_template=template, **knobs)
    return DecodeRequest(prompt=render_prompt(example.instruction, example.input, template),
                         adapter_dir=target.adapter_dir, **knobs)


Pair = tuple[int, int]  # (example index, target index)
GENERATION_METRICS = ("rouge_l", "exact_match", "judge")  # metrics of generated answers
CHOICE_METRICS = ("acc", "acc_norm")  # metrics of multiple-choice rows, from loglikelihoods


def run_eval(engine: InferenceEngine, examples: list[Example], targets: list[ModelTarget], metrics: list[str],
             on_progress: Callable[[int, int], None] | None = None, sampling: SamplingParams | None = None,
             judge: Callable[[list[str]], list[str]] | None = None, batch_size: int = 16,
             should_stop: Callable[[], bool] = lambda: False, done: Mapping[Pair, DecodeResult] | None = None,
             on_chunk: Callable[[list[tuple[Pair, DecodeResult]]], None] | None = None) -> dict:
    """Scores per model and outputs side by side. ``on_progress(rows_done, rows_total)``.

    ``judge(prompts) -> replies`` (metric ``judge``) grades every answer that has a reference, in one
    call once all answers exist, so a teacher can send the prompts concurrently.

    ``done`` holds generations of an earlier attempt (not generated again); ``on_chunk`` receives each
    chunk's new generations as soon as it is finished, so a caller can make them durable."""
    sampling = sampling or SamplingParams()
    if "judge" in metrics and judge is None:
        raise ValueError("metric 'judge' needs a judge callable")
    all_pairs = [(i, t) for i in range(len(examples)) for t in range(len(targets))]
    wanted = set(all_pairs)
    results: dict[Pair, DecodeResult] = {p: r for p, r in (done or {}).items() if p in wanted}
    generating = any(m in metrics for m in GENERATION_METRICS)
    pairs = [p for p in all_pairs if p not in results] if generating else []
    stopped = False
    for start in range(0, len(pairs), batch_size):
        if should_stop():
            stopped = True
            break
        chunk = pairs[start:start + batch_size]
        requests = []
        for i, t in chunk:
            try:
                requests.append(eval_request(engine, examples[i], targets[t], sampling))
            except Exception as exc:  # noqa: BLE001 - e.g. an adapter folder that cannot be read
                results[(i, t)] = DecodeResult("", "error", 0, 0, error=str(exc))
                requests.append(None)
        live = [(pair, r) for pair, r in zip(chunk, requests) if r is not None]
        for (pair, _), res in zip(live, engine.generate([r for _, r in live])):
            results[pair] = res
        if on_chunk:
            on_chunk([(pair, results[pair]) for pair in chunk])
        if on_progress:
            on_progress(len(results), len(all_pairs))
    choices: dict[Pair, ChoiceScores | str] = {}
    if any(m in metrics for m in CHOICE_METRICS) and not stopped:
        choices, stopped = score_choices(engine, examples, targets, should_stop=should_stop)
    losses = {}
    if "reference_loss" in metrics and not stopped:
        scored = [ex for ex in examples if ex.output]
        for t, target in enumerate(targets):
            try:
                losses[t] = dict(zip([id(ex) for ex in scored], reference_loss(
                    engine, scored, target.adapter_dir, target.prompt_template, batch_size=max(1, batch_size // 2))))
            except Exception:  # noqa: BLE001 - one failure must not sink the rest
                losses[t] = {}
    ratings: dict[Pair, float | None] = {}
    if "judge" in metrics and not stopped:
        graded = [pair for pair in all_pairs if examples[pair[0]].output and results[pair].error is None]
        replies = judge([judge_prompt(examples[i].instruction, examples[i].input, examples[i].output,
                                      results[(i, t)].text) for i, t in graded])
        ratings = {pair: parse_judge_rating(reply) for pair, reply in zip(graded, replies)}
    return _report(examples, targets, metrics, sampling, results, losses, ratings, stopped, choices, generating)


def _report(examples: list[Example], targets: list[ModelTarget], metrics: list[str], sampling: SamplingParams,
            results: dict[Pair, DecodeResult], losses: dict[int, dict[int, ReferenceLoss]],
            ratings: dict[Pair, float | None], stopped: bool, choices: dict[Pair, ChoiceScores | str] | None = None,
            generating: bool = True) -> dict:
    choices = choices or {}
    rows = []
    per_model: list[dict[str, list[float]]] = [{m: [] for m in metrics} for _ in targets]
    loss_tokens: list[list[tuple[float, int]]] = [[] for _ in targets]
    errors = [0] * len(targets)
    for i, ex in enumerate(examples):
        outputs = {}
        for t, target in enumerate(targets):
            res = results.get((i, t))
            if res is None and generating:
                continue
            out: dict[str, Any] = {}
            if res is not None:
                out.update(text=res.text, finish_reason=res.finish_reason, error=res.error)
                errors[t] += res.error is not None
            scored = choices.get((i, t))
            if isinstance(scored, str):
                out["choice_error"] = scored
                errors[t] += res is None or res.error is None  # a (row, model) counts once
            elif scored is not None:
                out.update({k: v for k, v in scored.as_dict().items() if k not in CHOICE_METRICS or k in metrics})
            if ex.output and res is not None and res.error is None:
                if "rouge_l" in metrics:
                    out["rouge_l"] = rouge_l(res.text, ex.output)
                if "exact_match" in metrics:
                    out["exact_match"] = exact_match(res.text, ex.output)
                if "judge" in metrics:
                    out["judge"] = ratings.get((i, t))
            loss = losses.get(t, {}).get(id(ex))
            if loss is not None:
                out["reference_loss"], out["perplexity"] = loss.loss, loss.perplexity
                loss_tokens[t].append((loss.loss, loss.tokens))
            for m in metrics:
                if m != "reference_loss" and out.get(m) is not None:
                    per_model[t][m].append(out[m])
            outputs[target.name] = out
        rows.append({"index": i, "line": ex.line, "instruction": ex.instruction, "input": ex.input,
                     "reference": ex.output, **({"choices": ex.choices, "answer": ex.answer} if ex.choices else {}),
                     "outputs": outputs})
    models = []
    for t, target in enumerate(targets):
        scores: dict[str, float | None] = {m: (sum(v) / len(v) if v else None)
                                           for m, v in per_model[t].items() if m != "reference_loss"}
        if "reference_loss" in metrics:
            n = sum(k for _, k in loss_tokens[t])
            mean = sum(loss * k for loss, k in loss_tokens[t]) / n if n else None
            scores["reference_loss"] = mean
            scores["perplexity"] = math.exp(min(mean, 700.0)) if mean is not None else None
        models.append({"name": target.name, "adapter_dir": str(target.adapter_dir) if target.adapter_dir else None,
                       "prompt_template": target.prompt_template, "scores": scores, "errors": errors[t],
                       "examples": sum(1 for i in range(len(examples)) if (i, t) in results or not generating)})
    return {"metrics": list(metrics), "sampling": sampling.model_dump(), "models": models, "examples": rows,
            "stopped": stopped}


__all__ = ["eval_request", "run_eval"]
