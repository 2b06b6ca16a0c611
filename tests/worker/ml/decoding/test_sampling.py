"""Next-token selection: filters and per-row generators."""
from __future__ import annotations

import math

import torch

from contracts.configs import SamplingParams
from worker.ml.decoding.sampling import filter_logits, make_generator, select_next_tokens


def test_top_k_and_top_p_filters():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    kept = filter_logits(logits, 1.0, top_k=2, top_p=1.0)
    assert torch.isfinite(kept).tolist() == [True, True, False, False]
    kept = filter_logits(logits, 1.0, top_k=None, top_p=0.7)  # 0.5 < 0.7, 0.5+0.3 crosses it
    assert torch.isfinite(kept).tolist() == [True, True, False, False]
    kept = filter_logits(logits, 1.0, top_k=None, top_p=0.4)
    assert torch.isfinite(kept).tolist() == [True, False, False, False]
    assert math.isclose(float(filter_logits(logits, 2.0, None, 1.0)[0]), float(logits[0]) / 2)


def test_select_mixes_greedy_and_seeded_sampling_rows():
    logits = torch.tensor([[0.0, 5.0, 1.0], [1.0, 1.0, 1.0]])
    greedy, sampled = SamplingParams(), SamplingParams(temperature=1.0, seed=7)
    assert make_generator(greedy) is None
    draws = [select_next_tokens(logits, [greedy, sampled], [None, make_generator(sampled)]).tolist()
             for _ in range(3)]
    assert all(d == draws[0] for d in draws) and draws[0][0] == 1
    many = {select_next_tokens(logits, [greedy, sampled], [None, g]).tolist()[1]
            for g in [make_generator(SamplingParams(temperature=1.0, seed=s)) for s in range(40)]}
    assert many == {0, 1, 2}  # uniform logits: every token gets drawn
