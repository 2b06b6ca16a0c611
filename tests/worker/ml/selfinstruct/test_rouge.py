"""RougeFilter must take exactly rouge_score's decisions (ROUGE-L F1 > t drops), only faster."""
from __future__ import annotations

import json
import random

import pytest
from rouge_score import rouge_scorer
from rouge_score.rouge_scorer import _score_lcs

from worker.ml.evaluation.rouge_l import lcs_length, rouge_l_f1, tokenize_cjk, tokenize_rouge_score
from worker.ml.selfinstruct.rouge import RougeFilter

_SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def reference_kept(cands, threshold=0.7, tokenize=_SCORER._tokenizer.tokenize):
    """The reference loop of ../shared/bench/ref_rouge_filter.py."""
    pool, kept = [], []
    for i, c in enumerate(cands):
        ct = tokenize(c)
        if all(_score_lcs(pt, ct).fmeasure <= threshold for pt in pool):
            pool.append(ct)
            kept.append(i)
    return kept


def perturb(text: str, rng: random.Random) -> str:
    words = text.split()
    if len(words) < 3:
        return text + " please"
    op = rng.randrange(4)
    i = rng.randrange(len(words))
    if op == 0:
        del words[i]
    elif op == 1:
        j = rng.randrange(len(words))
        words[i], words[j] = words[j], words[i]
    elif op == 2:
        words.insert(i, rng.choice(["the", "a", "new", "quickly", "given", "of"]))
    else:
        words = words[: max(2, int(len(words) * rng.uniform(0.5, 0.9)))]
    return " ".join(words)


@pytest.fixture(scope="module")
def alpaca_en(shared_data):
    return json.loads((shared_data / "alpaca_data_en.json").read_text())


def test_tokenizer_matches_rouge_score(alpaca_en):
    for row in alpaca_en[:3000]:
        for field in ("instruction", "input", "output"):
            assert tokenize_rouge_score(row[field]) == _SCORER._tokenizer.tokenize(row[field])
    odd = "İstanbul ＫELVIN café—naïve_x 3.14 ÆON"
    assert tokenize_rouge_score(odd) == _SCORER._tokenizer.tokenize(odd)


def test_lcs_and_f1_equal_rouge_score():
    rng = random.Random(0)
    for _ in range(2000):
        a = [rng.randrange(6) for _ in range(rng.randrange(0, 90))]
        b = [rng.randrange(6) for _ in range(rng.randrange(0, 90))]
        ref = _score_lcs(a, b)
        lcs = lcs_length(a, b)
        assert lcs == (round(ref.precision * len(b)) if b else 0)
        assert rouge_l_f1(lcs, len(a), len(b)) == ref.fmeasure


def test_first_1000_instructions_same_kept_indices(alpaca_en):
    cands = [r["instruction"] for r in alpaca_en[:1000]]
    assert RougeFilter(0.7).filter_candidates(cands) == reference_kept(cands)


@pytest.mark.parametrize("threshold", [0.3, 0.5])
def test_lower_thresholds_exercise_rejections(alpaca_en, threshold):
    cands = [r["instruction"] for r in alpaca_en[:500]]
    ref = reference_kept(cands, threshold)
    assert len(ref) < len(cands)  # the comparison is not vacuous
    assert RougeFilter(threshold).filter_candidates(cands) == ref


def test_near_duplicates_and_streaming_add(alpaca_en):
    rng = random.Random(7)
    base = [r["instruction"] for r in alpaca_en[1000:1400]]
    cands = base + [perturb(rng.choice(base), rng) for _ in range(600)]
    rng.shuffle(cands)
    ref = reference_kept(cands)
    assert 300 < len(ref) < len(cands)
    assert RougeFilter(0.7).filter_candidates(cands) == ref
    # the streaming API takes the same decisions, and explains rejects exactly
    filt = RougeFilter(0.7)
    kept_texts = []
    for i, c in enumerate(cands):
        verdict = filt.add(c)
        assert verdict.kept == (i in set(ref))
        if verdict.kept:
            kept_texts.append(c)
        else:
            ct = _SCORER._tokenizer.tokenize(c)
            scores = [_score_lcs(_SCORER._tokenizer.tokenize(k), ct).fmeasure for k in kept_texts]
            assert verdict.score == max(scores) > 0.7
            assert scores[verdict.nearest_index] == verdict.score


def test_longer_texts_outputs(alpaca_en):
    cands = [r["output"] for r in alpaca_en[:300]] + [r["output"][: len(r["output"]) // 2] for r in alpaca_en[:100]]
    assert RougeFilter(0.7).filter_candidates(cands) == reference_kept(cands)


def test_edge_cases_ties_empty_and_punctuation():
    # 10 vs 10 tokens with LCS 7: F sits exactly at the threshold in exact arithmetic
    a = "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10"
    b = "w1 w2 w3 w4 w5 w6 w7 x8 x9 x10"
    cands = ["", "!!! ...", a, b, "W1 w2 w3 w4 w5 w6 w7 w8 w9", "w1", "w1", "…", a.upper(), "x " * 200, "x " * 199]
    assert RougeFilter(0.7).filter_candidates(cands) == reference_kept(cands)
    for t in (0.35, 0.7, 0.9, 1.0):
        assert RougeFilter(t).filter_candidates(cands) == reference_kept(cands, t)


def test_reference_pool_and_check_do_not_change_decisions():
    filt = RougeFilter(0.7, pool=["Give three tips for staying healthy."])
    assert filt.check("Give three tips for staying healthy!").kept is False
    assert len(filt) == 1
    verdict = filt.add("Give me three tips for staying healthy.")
    assert not verdict.kept and verdict.nearest_index == 0 and verdict.score > 0.7
    assert filt.add("Translate the sentence into French.").kept
    assert len(filt) == 2


def test_chinese_is_compared_with_cjk_tokenizer(shared_data):
    rows = json.loads((shared_data / "alpaca_data_zh_partial.json").read_text())
    rng = random.Random(3)
    base = [r["instruction"] for r in rows[:300]]
    cands = base + [s[: max(2, int(len(s) * 0.85))] for s in rng.sample(base, 100)]
    rng.shuffle(cands)
    # rouge_score's tokenizer sees only the odd ASCII word: (almost) everything is kept
    latin_only = RougeFilter(0.7).filter_candidates(cands)
    assert latin_only == reference_kept(cands)
    ref = reference_kept(cands, 0.7, tokenize_cjk)
    assert len(ref) < len(latin_only) - 50
    assert RougeFilter(0.7, tokenizer="cjk").filter_candidates(cands) == ref
