"""Multiple-choice eval rows scored from loglikelihoods (acc, acc_norm) for base and adapters in one job."""
from __future__ import annotations

import json

import pytest

from contracts.decoding import ModelTarget
from contracts.prompts import render_prompt
from contracts.records import parse_eval_file
from tests.worker.ml.decoding import engine_helpers as helpers
from worker.ml.decoding.adapter_cache import BASE_ADAPTER
from worker.ml.decoding.scoring import ScoreItem, score_continuations
from worker.ml.evaluation.eval_run import run_eval
from worker.ml.evaluation.multiple_choice import choice_scores

tiny_adapters, tiny_engine = helpers.tiny_adapters, helpers.tiny_engine  # shared fixtures

ROWS = [
    {"instruction": "What is 2 + 2?", "choices": ["3", "4", "22"], "answer": 1},
    {"instruction": "Pick the animal.", "input": "One of these is alive.", "choices": ["a rock", "a cat"],
     "answer": "a cat"},
    {"instruction": "The sky on a clear day is", "choices": ["blue", "green", "plaid with yellow dots", "red"],
     "answer": 0},
    {"instruction": "Which is a prime number?", "choices": ["9", "7", "15"], "answer": 1},
    {"instruction": "Water freezes at", "choices": ["0 degrees Celsius", "100 degrees Celsius"], "answer": 0},
    {"instruction": "Say hello.", "choices": [" Hello!", " Goodbye."], "answer": " Hello!"},
]


@pytest.fixture
def examples():
    parsed = parse_eval_file("\n".join(json.dumps(r) for r in ROWS).encode())
    assert parsed.ok
    return parsed.records


def _direct_accuracy(engine, examples, adapter_dir) -> tuple[list[int], list[int]]:
    """(argmax, argmax per character) of each row's choices, scored by score_continuations on pairs built
    here: the model's prompt (Alpaca for adapter A, the chat template for the base), lm-eval's token split."""
    tok = engine.tokenizer
    predicted, predicted_norm = [], []
    for ex in examples:
        if adapter_dir is None:
            user = f"{ex.instruction}\n\n{ex.input}" if ex.input else ex.instruction
            prompt = tok.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                             add_generation_prompt=True)
        else:
            prompt = render_prompt(ex.instruction, ex.input)
        context = prompt.rstrip()
        moved = prompt[len(context):]
        items = []
        for choice in ex.choices:
            whole = tok(context + moved + choice, add_special_tokens=adapter_dir is not None).input_ids
            ctx = tok(context, add_special_tokens=adapter_dir is not None).input_ids
            name = BASE_ADAPTER if adapter_dir is None else engine.loaded.adapter_name(adapter_dir)
            items.append(ScoreItem(ctx, whole[len(ctx):], name))
        sums = [r.logprob for r in score_continuations(engine.loaded, items)]
        predicted.append(max(range(len(sums)), key=sums.__getitem__))
        normed = [s / len(c) for s, c in zip(sums, ex.choices)]
        predicted_norm.append(max(range(len(normed)), key=normed.__getitem__))
    return predicted, predicted_norm


def test_acc_equals_the_accuracy_of_the_engines_own_scores(tiny_engine, tiny_adapters, examples):
    targets = [ModelTarget("base", None), ModelTarget("ft-a", tiny_adapters["A"])]
    report = run_eval(tiny_engine, examples, targets, ["acc", "acc_norm"])
    answers = [ex.answer for ex in examples]
    for t, target in enumerate(targets):
        predicted, predicted_norm = _direct_accuracy(tiny_engine, examples, target.adapter_dir)
        scores = report["models"][t]["scores"]
        assert scores["acc"] == pytest.approx(sum(p == a for p, a in zip(predicted, answers)) / len(answers))
        assert scores["acc_norm"] == pytest.approx(sum(p == a for p, a in zip(predicted_norm, answers)) / len(answers))
        outs = [row["outputs"][target.name] for row in report["examples"]]
        assert [o["predicted"] for o in outs] == predicted and [o["predicted_norm"] for o in outs] == predicted_norm
        assert report["models"][t]["errors"] == 0 and report["models"][t]["examples"] == len(examples)
        assert all("text" not in o for o in outs)  # no generation metric: nothing generated
    # the adapter really scores differently from the base
    logprobs = [[row["outputs"][t.name]["choice_logprobs"] for row in report["examples"]] for t in targets]
    assert logprobs[0] != logprobs[1]
    assert report["examples"][1]["choices"] == ["a rock", "a cat"] and report["examples"][1]["answer"] == 1


def test_generation_metrics_beside_choices_and_plain_rows(tiny_engine, examples):
    from contracts.configs import SamplingParams
    from contracts.records import Example

    rows = examples[:2] + [Example("Repeat the word cat.", "", "cat", line=9)]
    report = run_eval(tiny_engine, rows, [ModelTarget("base", None)], ["exact_match", "acc"],
                      sampling=SamplingParams(max_new_tokens=3))
    outs = [row["outputs"]["base"] for row in report["examples"]]
    assert all("text" in o and "exact_match" in o for o in outs)  # generated, compared with the right choice
    assert ["acc" in o for o in outs] == [True, True, False] and "acc_norm" not in outs[0]
    assert report["models"][0]["scores"]["acc"] in (0.0, 0.5, 1.0) and report["models"][0]["examples"] == 3


def test_acc_norm_divides_by_choice_length_and_first_maximum_wins():
    scores = choice_scores(["a", "bbbbbb"], 1, [-4.0, -6.0])
    assert (scores.predicted, scores.acc, scores.predicted_norm, scores.acc_norm) == (0, 0.0, 1, 1.0)
    assert choice_scores(["x", "y"], 0, [-1.0, -1.0]).predicted == 0
