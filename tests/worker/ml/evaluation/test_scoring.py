"""Scoring: ROUGE-L equal to rouge_score, exact match, reference loss against a manual forward."""
from __future__ import annotations

import json
import math

import pytest
import torch

from contracts.records import Example
from tests.worker.ml.decoding import engine_helpers as helpers
from worker.ml.evaluation.rouge_l import tokenize_rouge_score
from worker.ml.evaluation.scoring import (
    exact_match,
    judge_prompt,
    parse_judge_rating,
    reference_loss,
    rouge_l,
)

tiny_adapters, tiny_engine = helpers.tiny_adapters, helpers.tiny_engine  # shared fixtures

PAIRS = [
    ("The cat sat on the mat.", "A cat was sitting on the mat!"),
    ("", "anything"),
    ("Numbers 12 and 3.5, e-mail: x@y.z", "numbers 12 and 3 5 email x y z"),
    ("完全不同", "中文文本"),
    ("repeat repeat repeat", "repeat"),
    ("Paris is the capital of France", "The capital of France is Paris"),
]


def test_rouge_l_equals_rouge_score(shared_data):
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rows = json.loads((shared_data / "alpaca_data_en.json").read_text())[:150]
    pairs = PAIRS + [(a["instruction"], b["instruction"]) for a, b in zip(rows[::2], rows[1::2])]
    pairs += [(a["output"], b["output"]) for a, b in zip(rows[::3], rows[1::3])]
    for pred, ref in pairs:
        assert rouge_l(pred, ref) == pytest.approx(scorer.score(ref, pred)["rougeL"].fmeasure, abs=1e-12)


def test_rouge_l_custom_tokenizer_for_other_scripts():
    assert rouge_l("完全不同", "中文文本") == 0.0  # rouge_score's tokenizer drops non-ASCII text
    chars = lambda s: [c for c in s if not c.isspace()]
    assert rouge_l("我喜欢猫", "我喜欢狗", tokenize=chars) == pytest.approx(0.75)
    assert tokenize_rouge_score("Hello, World-2!") == ["hello", "world", "2"]


def test_exact_match_normalises():
    assert exact_match("The  Answer is: Paris.", "answer is paris") == 1.0
    assert exact_match("Paris", "London") == 0.0


def test_reference_loss_matches_a_plain_forward(tiny_engine, tiny_adapters, tiny_llama_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from contracts.prompts import render_prompt

    examples = [Example("Say hello.", "", "Hello there!"), Example("Add the numbers.", "2 and 3", "5"),
                Example("Write a long list of fruits please.", "", "apple, banana, cherry, date, elderberry")]
    got = reference_loss(tiny_engine, examples, tiny_adapters["A"], batch_size=2)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), str(tiny_adapters["A"]))
    tok = tiny_engine.tokenizer
    for ex, res in zip(examples, got):
        prompt = render_prompt(ex.instruction, ex.input)
        n_prompt = len(tok(prompt).input_ids)
        ids = tok(prompt + ex.output).input_ids + [tok.eos_token_id]
        labels = torch.tensor([[-100] * n_prompt + ids[n_prompt:]])
        with torch.no_grad():
            want = model.eval()(input_ids=torch.tensor([ids]), labels=labels).loss.item()
        assert res.loss == pytest.approx(want, rel=1e-4)
        assert res.perplexity == pytest.approx(math.exp(want), rel=1e-4)
        assert res.tokens == len(ids) - n_prompt
    base = reference_loss(tiny_engine, examples, None, prompt_template="alpaca")
    assert all(abs(b.loss - a.loss) > 1e-3 for a, b in zip(got, base))  # the adapter changes the loss


def test_judge_prompt_and_rating():
    prompt = judge_prompt("Add.", "2 and 3", "5", "5")
    assert "[Instruction]\nAdd." in prompt and "[Reference answer]\n5" in prompt and "[Input]\n2 and 3" in prompt
    assert "[Input]\n(none)" in judge_prompt("Say hi.", "", "hi", "hello")
    assert parse_judge_rating("The answer is right. Rating: [[8]]") == 8.0
    assert parse_judge_rating("no number") is None
    assert parse_judge_rating("Rating: 7") == 7.0
    assert parse_judge_rating("[[42]]") is None
