"""train_lora: layout, metrics, exact resume, cancel, warm start, and real learning on the base model."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from contracts.configs import FinetuneHyperparameters
from contracts.records import Example
from worker.ml.training.checkpoints import list_checkpoints
from worker.ml.training.finetune import train_lora

METRIC_KEYS = {"step", "total_steps", "train_loss", "train_mean_token_accuracy", "learning_rate", "tokens",
               "tokens_per_s", "epoch"}


def _examples(n: int = 24) -> list[Example]:
    colours = ["red", "green", "blue", "yellow", "purple", "orange"]
    return [Example(f"What colour is item {i}?", "" if i % 3 else f"Item {i} is in the box.",
                    f"Item {i} is {colours[i % 6]}. " * (1 + i % 4), line=i + 1) for i in range(n)]


def _hp(**overrides) -> FinetuneHyperparameters:
    base = {"batch_size": 8, "micro_batch_size": 4, "num_epochs": 2, "learning_rate": 1e-2, "warmup_steps": 1,
            "lora_dropout": 0.1, "val_set_size": 0}
    return FinetuneHyperparameters(**{**base, **overrides})


def _train(model_dir: Path, out: Path, hp: FinetuneHyperparameters, examples=None, **kwargs):
    steps: list[dict] = []
    res = train_lora(base_model_dir=model_dir, train_examples=examples or _examples(), val_examples=None, hp=hp,
                     out_dir=out, on_step=steps.append, **kwargs)
    return res, steps


def test_trains_and_writes_peft_layout(tiny_llama_dir, tmp_path):
    checkpoints: list[dict] = []
    res, steps = _train(tiny_llama_dir, tmp_path, _hp(val_set_size=4, n_checkpoints=2),
                        on_checkpoint=checkpoints.append)
    assert res["status"] == "succeeded" and res["steps"] == res["total_steps"] == 6
    assert (res["n_train"], res["n_val"]) == (20, 4)
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5, 6]
    assert all(METRIC_KEYS <= set(s) for s in steps)
    assert steps[0]["learning_rate"] == 0.0 and steps[1]["learning_rate"] == pytest.approx(1e-2)
    assert steps[-1]["tokens"] == res["trained_tokens"] > 0
    assert [s["step"] for s in steps if "valid_loss" in s] == [3, 6]
    assert steps[-1]["train_loss"] < steps[0]["train_loss"]
    assert [c["step"] for c in checkpoints] == [3, 6]
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-3", "step-6"]
    adapter = Path(res["adapter_dir"])
    assert adapter == tmp_path / "adapter"
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 8
    weights = load_file(adapter / "adapter_model.safetensors")
    assert weights and all("lora_" in k for k in weights)
    assert not list(tmp_path.glob(".tmp-*")) and not list((tmp_path / "checkpoints").glob(".tmp-*"))


@pytest.mark.parametrize("packing", [True, False], ids=["packed-default", "unpacked"])
def test_interrupted_and_resumed_run_matches_uninterrupted(tiny_llama_dir, tmp_path, packing):
    """With the default speed techniques (packing, fused head loss, ...) and without packing."""
    hp = _hp(num_epochs=3, save_steps=2, packing=packing, cutoff_len=64)
    full, full_steps = _train(tiny_llama_dir, tmp_path / "full", hp)

    seen = {"step": 0, "checks": 0}

    def stop_in_step_five() -> bool:  # the second micro-batch of step 5 (or step 5's start if it has one)
        if seen["step"] < 4:
            return False
        seen["checks"] += 1
        return seen["checks"] == 2 or seen["step"] > 4

    def follow(metrics: dict) -> None:
        seen["step"] = metrics["step"]
        cut_steps.append(metrics)

    cut_steps: list[dict] = []
    cut = train_lora(base_model_dir=tiny_llama_dir, train_examples=_examples(), val_examples=None, hp=hp,
                     out_dir=tmp_path / "cut", on_step=follow, should_stop=stop_in_step_five)
    assert cut["status"] == "cancelled" and cut["steps"] == 4
    assert [p.name for p in list_checkpoints(tmp_path / "cut")] == ["step-2", "step-4"]
    resumed, resumed_steps = _train(tiny_llama_dir, tmp_path / "cut", hp)
    assert resumed["status"] == "succeeded" and resumed["resumed_from_step"] == 4
    assert [s["step"] for s in resumed_steps] == [5, 6, 7, 8, 9]
    losses = [s["train_loss"] for s in cut_steps + resumed_steps]
    assert losses == pytest.approx([s["train_loss"] for s in full_steps], rel=1e-6, abs=1e-7)
    assert resumed["trained_tokens"] == full["trained_tokens"]
    a = load_file(Path(full["adapter_dir"]) / "adapter_model.safetensors")
    b = load_file(Path(resumed["adapter_dir"]) / "adapter_model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_packing_trains_the_same_steps_with_fewer_passes(tiny_llama_dir, tmp_path, monkeypatch):
    """Packed rows hold the same examples per step with block-diagonal attention: the same losses
    (fp32, no dropout), fewer forward passes."""
    from worker.ml.training import train_step

    passes = []
    real = train_step.micro_step
    monkeypatch.setattr(train_step, "micro_step", lambda model, batch, *a: passes.append(batch["input_ids"].shape)
                        or real(model, batch, *a))
    hp = _hp(lora_dropout=0.0, precision="fp32", cutoff_len=128)
    assert hp.packing  # the default
    plain, plain_steps = _train(tiny_llama_dir, tmp_path / "plain", hp.model_copy(update={"packing": False}))
    n_plain, passes[:] = len(passes), []
    packed, packed_steps = _train(tiny_llama_dir, tmp_path / "packed", hp)
    assert packed["steps"] == plain["steps"] and packed["trained_tokens"] == plain["trained_tokens"]
    assert len(passes) < n_plain and all(width <= 128 for _, width in passes)
    assert [s["train_loss"] for s in packed_steps] == pytest.approx([s["train_loss"] for s in plain_steps], rel=1e-4)


def test_rerun_of_a_finished_run_does_not_train_again(tiny_llama_dir, tmp_path):
    hp = _hp(num_epochs=1)
    first, _ = _train(tiny_llama_dir, tmp_path, hp)
    again, steps = _train(tiny_llama_dir, tmp_path, hp)
    assert again["status"] == "succeeded" and again["resumed_from_step"] == first["steps"] and steps == []


def test_cancel_checkpoints_the_last_finished_step_once(tiny_llama_dir, tmp_path):
    saved: list[int] = []
    calls = {"n": 0}

    def stop(limit: int) -> bool:
        calls["n"] += 1
        return calls["n"] >= limit

    hp = _hp(num_epochs=3, save_steps=2, packing=False)  # 2 micro-batches per step: the counts below
    res, _ = _train(tiny_llama_dir, tmp_path / "a", hp, should_stop=lambda: stop(6),
                    on_checkpoint=lambda c: saved.append(c["step"]))
    assert res["status"] == "cancelled" and res["steps"] == 2 and saved == [2]  # step 2 was saved already
    calls["n"] = 0
    res, _ = _train(tiny_llama_dir, tmp_path / "b", hp, should_stop=lambda: stop(8),
                    on_checkpoint=lambda c: saved.append(c["step"]))
    assert res["steps"] == 3 and saved == [2, 2, 3]
    assert [p.name for p in list_checkpoints(tmp_path / "b")] == ["step-2", "step-3"]


def test_cancel_before_the_first_step_leaves_no_checkpoint(tiny_llama_dir, tmp_path):
    res, steps = _train(tiny_llama_dir, tmp_path, _hp(), should_stop=lambda: True)
    assert res["status"] == "cancelled" and res["steps"] == 0 and res["adapter_dir"] is None
    assert steps == [] and list_checkpoints(tmp_path) == []


def test_checkpoint_of_another_run_is_refused(tiny_llama_dir, tmp_path):
    _train(tiny_llama_dir, tmp_path, _hp(num_epochs=1))
    with pytest.raises(ValueError, match="different run"):
        _train(tiny_llama_dir, tmp_path, _hp(num_epochs=1, batch_size=4))


def test_warm_start_continues_from_the_init_adapter(tiny_llama_dir, tmp_path):
    hp = _hp(num_epochs=3, lora_dropout=0.0)
    first, first_steps = _train(tiny_llama_dir, tmp_path / "a", hp)
    _, warm_steps = _train(tiny_llama_dir, tmp_path / "b", hp.model_copy(update={"init_adapter": first["adapter_dir"]}))
    _, cold_steps = _train(tiny_llama_dir, tmp_path / "c", hp)
    assert warm_steps[0]["train_loss"] < cold_steps[0]["train_loss"]
    assert warm_steps[0]["train_loss"] < first_steps[0]["train_loss"]
    with pytest.raises(ValueError, match="does not match"):
        _train(tiny_llama_dir, tmp_path / "d", hp.model_copy(update={"init_adapter": first["adapter_dir"],
                                                                       "lora_r": 4}))


def test_no_trainable_example_is_an_error(tiny_llama_dir, tmp_path):
    exs = [Example("explain " * 80, "", "ok", line=1)]
    with pytest.raises(ValueError, match="cutoff_len=32"):
        _train(tiny_llama_dir, tmp_path, _hp(cutoff_len=32), examples=exs)


def test_chat_examples_train_with_the_chat_template(tiny_llama_dir, tmp_path):
    exs = [Example("hi", "", "hello", line=i, messages=[{"role": "user", "content": f"Say hi {i}"},
                                                        {"role": "assistant", "content": f"Hi number {i}!"}])
           for i in range(8)]
    res, steps = _train(tiny_llama_dir, tmp_path, _hp(prompt_template="chat", num_epochs=1), examples=exs)
    assert res["status"] == "succeeded" and steps[-1]["tokens"] > 0


def test_fp32_precision_and_explicit_validation_set(tiny_llama_dir, tmp_path):
    steps: list[dict] = []
    res = train_lora(base_model_dir=tiny_llama_dir, train_examples=_examples(16), val_examples=_examples(4),
                     hp=_hp(precision="fp32", num_epochs=1, eval_steps=1), out_dir=tmp_path, on_step=steps.append)
    assert res["precision"] == "fp32" and res["n_val"] == 4
    assert all("valid_loss" in s for s in steps)


@pytest.fixture()
def one_torch_thread():
    """On a shared 2-core box, 2 intra-op threads spin against other processes (~10x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_real_base_model_learns_its_training_prompts(base_model_dir, tmp_path, one_torch_thread):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from worker.ml.training.data import load_tokenizer, tokenize_examples
    from worker.ml.training.loss import evaluate_loss

    exs = [Example(f"What is the secret code of box {i}?", "", f"The secret code of box {i} is ZEBRA-{i * 7}.",
                   line=i + 1) for i in range(4)]
    hp = FinetuneHyperparameters(batch_size=4, micro_batch_size=4, num_epochs=8, learning_rate=1e-2, warmup_steps=1)
    res = train_lora(base_model_dir=base_model_dir, train_examples=exs, val_examples=None, hp=hp, out_dir=tmp_path)
    assert res["status"] == "succeeded"

    tokenized = tokenize_examples(exs, load_tokenizer(base_model_dir), cutoff_len=256, train_on_inputs=False)
    base = AutoModelForCausalLM.from_pretrained(base_model_dir, dtype=torch.float32)
    before = evaluate_loss(base, tokenized, micro_batch_size=4, pad_id=2, device=torch.device("cpu"))["loss"]
    tuned = PeftModel.from_pretrained(base, res["adapter_dir"])  # plain peft loads it
    after = evaluate_loss(tuned, tokenized, micro_batch_size=4, pad_id=2, device=torch.device("cpu"))["loss"]
    assert after < 0.25 * before
