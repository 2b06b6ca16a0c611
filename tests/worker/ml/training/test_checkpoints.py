"""Checkpoint save/load: adapter, optimizer, scheduler, RNG round-trip; atomic naming."""
from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from contracts.configs import FinetuneHyperparameters
from worker.ml.training.checkpoints import (
    capture_rng_state,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    read_checkpoint_meta,
    save_checkpoint,
)
from worker.ml.training.lora import build_lora_model


def _setup(model_dir):
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    base.requires_grad_(False)
    model = build_lora_model(base, FinetuneHyperparameters())
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    return model, params, opt, sched


def _train_step(model, opt, sched):
    ids = torch.randint(0, 100, (2, 8))
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    sched.step()
    opt.zero_grad()


def test_round_trip_restores_weights_optimizer_scheduler_and_rng(tiny_llama_dir, tmp_path):
    model, params, opt, sched = _setup(tiny_llama_dir)
    _train_step(model, opt, sched)
    rng = capture_rng_state()
    path = save_checkpoint(tmp_path, 1, model=model, optimizer=opt, scheduler=sched, rng_state=rng,
                           meta={"tokens": 16, "metrics": {"train_loss": 1.5}})
    assert path == checkpoint_path(tmp_path, 1)
    assert {p.name for p in path.iterdir()} >= {"adapter_model.safetensors", "adapter_config.json",
                                                "training_state.pt", "checkpoint.json"}
    saved = [p.detach().clone() for p in params]
    expected_draw = torch.rand(3)
    _train_step(model, opt, sched)  # move everything on

    model2, params2, opt2, sched2 = _setup(tiny_llama_dir)
    meta = load_checkpoint(path, model=model2, optimizer=opt2, scheduler=sched2)
    assert meta == {"step": 1, "tokens": 16, "metrics": {"train_loss": 1.5}} == read_checkpoint_meta(path)
    assert all(torch.equal(a, b) for a, b in zip(saved, params2))
    assert sched2.last_epoch == 1 and sched2.get_last_lr() == pytest.approx([5e-3])
    assert opt2.param_groups[0]["lr"] == pytest.approx(5e-3)
    assert opt2.state_dict()["state"][0]["step"] == 1
    assert torch.equal(torch.rand(3), expected_draw)


def test_latest_checkpoint_orders_numerically_and_skips_partial_dirs(tiny_llama_dir, tmp_path):
    model, _, opt, sched = _setup(tiny_llama_dir)
    for step in (9, 10, 2):
        save_checkpoint(tmp_path, step, model=model, optimizer=opt, scheduler=sched, rng_state=capture_rng_state(),
                        meta={})
    (tmp_path / "checkpoints" / ".tmp-step-11-abcd").mkdir()
    (tmp_path / "checkpoints" / "step-12").mkdir()  # no meta: never completed
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-2", "step-9", "step-10"]
    assert latest_checkpoint(tmp_path).name == "step-10"
    assert latest_checkpoint(tmp_path / "nothing") is None


def test_failed_save_leaves_no_directory(tiny_llama_dir, tmp_path):
    model, _, opt, sched = _setup(tiny_llama_dir)
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path, 3, model=model, optimizer=opt, scheduler=sched, rng_state=capture_rng_state(),
                        meta={"bad": object()})
    assert list((tmp_path / "checkpoints").iterdir()) == []


def test_stale_temp_dirs_of_a_killed_run_are_removed(tmp_path):
    from worker.ml.training.checkpoints import remove_stale_temp_dirs

    (tmp_path / "checkpoints" / ".tmp-step-4-dead").mkdir(parents=True)
    (tmp_path / ".tmp-adapter-dead").mkdir()
    (tmp_path / "checkpoints" / "step-2").mkdir()
    remove_stale_temp_dirs(tmp_path)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["checkpoints", "step-2"]
