"""LR factors match the HF schedules; checkpoint cadence."""
from __future__ import annotations

import pytest
import torch

from worker.ml.training.schedules import checkpoint_steps, effective_warmup_steps, lr_factor


@pytest.mark.parametrize("name", ["linear", "cosine", "constant"])
def test_lr_factor_matches_transformers(name):
    from transformers import get_scheduler

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = get_scheduler("constant_with_warmup" if name == "constant" else name, opt, num_warmup_steps=5,
                          num_training_steps=23)
    for step in range(23):
        assert lr_factor(step, warmup_steps=5, total_steps=23, scheduler=name) == pytest.approx(sched.get_last_lr()[0])
        opt.step()
        sched.step()


def test_reference_recipe_schedule_starts_at_zero():
    lrs = [3e-4 * lr_factor(s, warmup_steps=5, total_steps=6, scheduler="linear") for s in range(6)]
    assert lrs == pytest.approx([0, 6e-5, 1.2e-4, 1.8e-4, 2.4e-4, 3e-4])


@pytest.mark.parametrize("warmup, total, expected", [(100, 1200, 100), (5, 6, 5), (100, 6, 1), (100, 50, 5),
                                                     (0, 10, 0)])
def test_effective_warmup(warmup, total, expected):
    assert effective_warmup_steps(warmup, total) == expected


def test_checkpoint_cadence():
    assert checkpoint_steps(10, save_steps=3, n_checkpoints=1) == [3, 6, 9, 10]
    assert checkpoint_steps(10, save_steps=0, n_checkpoints=1) == [10]
    assert checkpoint_steps(10, save_steps=0, n_checkpoints=3) == [4, 7, 10]
    assert checkpoint_steps(2, save_steps=0, n_checkpoints=5) == [1, 2]
    assert checkpoint_steps(0, save_steps=0, n_checkpoints=1) == []
