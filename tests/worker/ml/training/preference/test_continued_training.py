"""Continued training starts from the given adapter's weights: the first step's loss (taken before any
update) equals the starting adapter's loss on that data, not the base model's -- SFT after SFT -- and
DPO after SFT takes the starting adapter as its reference (first loss log 2, reference log-probs the adapter's)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from contracts.configs import DpoHyperparameters, FinetuneHyperparameters
from contracts.records import Example
from tests.worker.ml.training.preference.test_loop import pairs
from worker.ml.training.data import load_tokenizer, tokenize_examples
from worker.ml.training.finetune import train_lora
from worker.ml.training.lora import load_adapter_model
from worker.ml.training.loss import evaluate_loss
from worker.ml.training.preference.data import collate_pairs, tokenize_pairs
from worker.ml.training.preference.loop import train_dpo
from worker.ml.training.preference.loss import sequence_logprobs
from worker.ml.training.preference.reference import REFERENCE_FILE

EXACT = {"lora_dropout": 0.0, "precision": "fp32", "warmup_steps": 0, "val_set_size": 0}


def examples(n: int, offset: int = 0) -> list[Example]:
    return [Example(f"Spell the number {i}.", "", f"The number {i} is spelled {i} times {i % 3}.", line=i + 1)
            for i in range(offset, offset + n)]


@pytest.fixture(scope="module")
def starting_adapter(tiny_llama_dir, tmp_path_factory) -> Path:
    hp = FinetuneHyperparameters(batch_size=4, micro_batch_size=4, num_epochs=3, learning_rate=3e-2, **EXACT)
    res = train_lora(base_model_dir=tiny_llama_dir, train_examples=examples(8), val_examples=None, hp=hp,
                     out_dir=tmp_path_factory.mktemp("start"), device="cpu")
    return Path(res["adapter_dir"])


def sft_loss(model_dir: Path, data: list[Example], adapter: Path | None) -> float:
    from transformers import AutoModelForCausalLM

    model = (load_adapter_model(model_dir, adapter) if adapter else
             AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval())
    tokenized = tokenize_examples(data, load_tokenizer(model_dir), cutoff_len=256, train_on_inputs=False)
    return evaluate_loss(model, tokenized, micro_batch_size=4, pad_id=0, device=torch.device("cpu"))["loss"]


def test_sft_after_sft_starts_from_the_adapters_loss(tiny_llama_dir, starting_adapter, tmp_path):
    new_data = examples(8, offset=20)
    adapter_loss, base_loss = sft_loss(tiny_llama_dir, new_data, starting_adapter), sft_loss(tiny_llama_dir, new_data, None)
    assert abs(adapter_loss - base_loss) > 0.05
    steps: list[dict] = []
    hp = FinetuneHyperparameters(batch_size=8, micro_batch_size=4, num_epochs=1, learning_rate=1e-2,
                                 init_adapter=str(starting_adapter), **EXACT)
    res = train_lora(base_model_dir=tiny_llama_dir, train_examples=new_data, val_examples=None, hp=hp,
                     out_dir=tmp_path, device="cpu", on_step=steps.append)
    assert res["status"] == "succeeded" and steps[0]["step"] == 1
    assert steps[0]["train_loss"] == pytest.approx(adapter_loss, abs=1e-5)


def test_dpo_after_sft_uses_the_starting_adapter_as_reference(tiny_llama_dir, starting_adapter, tmp_path):
    steps: list[dict] = []
    hp = DpoHyperparameters(batch_size=4, micro_batch_size=4, num_epochs=1, learning_rate=1e-2, beta=0.5,
                            init_adapter=str(starting_adapter), **EXACT)
    res = train_dpo(base_model_dir=tiny_llama_dir, pairs=pairs(4), hp=hp, out_dir=tmp_path, device="cpu",
                    on_step=steps.append)
    assert res["status"] == "succeeded"
    assert steps[0]["train_loss"] == pytest.approx(math.log(2), abs=1e-5)
    from transformers import AutoModelForCausalLM

    batch = collate_pairs(tokenize_pairs(pairs(4), load_tokenizer(tiny_llama_dir), hp), pad_id=0)
    with torch.no_grad():
        adapter_logps = sequence_logprobs(load_adapter_model(tiny_llama_dir, starting_adapter),
                                          batch["input_ids"], batch["targets"])
        base_logps = sequence_logprobs(AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32),
                                       batch["input_ids"], batch["targets"])
    saved = torch.load(tmp_path / REFERENCE_FILE, weights_only=True)["logps"]
    order = torch.cat([saved[:, 0], saved[:, 1]])  # pairs come in file order (one step, one micro-batch)
    assert torch.allclose(order, adapter_logps, atol=1e-4)
    assert (order - base_logps).abs().max() > 0.05
