"""The label-only loss equals the model's own causal-LM loss; evaluation is token-weighted."""
from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from contracts.records import Example
from worker.ml.training.data import (
    collate_micro_batch,
    collate_packed_micro_batch,
    load_tokenizer,
    tokenize_examples,
)
from worker.ml.training.loss import causal_lm_loss_sums, evaluate_loss, target_positions


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).eval()
    exs = [Example(f"Say {i} words.", "", "word " * (i + 1), line=i) for i in range(5)]
    return model, tokenize_examples(exs, load_tokenizer(tiny_llama_dir), cutoff_len=64, train_on_inputs=False)


def _hf_loss_sum(model, example) -> tuple[float, int]:
    ids = torch.tensor([example.input_ids])
    labels = torch.tensor([example.labels])
    n = int((labels[:, 1:] != -100).sum())
    with torch.no_grad():
        return model(input_ids=ids, labels=labels).loss.item() * n, n


def test_loss_sums_match_hf_loss_on_padded_batch(tiny):
    model, exs = tiny
    batch = collate_micro_batch(exs, pad_id=0)
    with torch.no_grad():
        sums = causal_lm_loss_sums(model, batch["input_ids"], batch["targets"], target_positions(batch["targets"]))
    expected = [_hf_loss_sum(model, ex) for ex in exs]
    assert sums.count == sum(n for _, n in expected) == batch["n_loss"]
    assert sums.loss.item() == pytest.approx(sum(s for s, _ in expected), rel=1e-5)
    assert 0 <= sums.correct.item() <= sums.count


def test_packed_rows_give_each_example_its_own_loss(tiny):
    """Block-diagonal attention: examples packed into one row score exactly as if each were alone."""
    model, exs = tiny
    rows = [[exs[4], exs[0], exs[2]], [exs[3], exs[1]]]
    batch = collate_packed_micro_batch(rows, pad_id=0)
    assert batch["input_ids"].shape == (2, sum(len(ex.input_ids) for ex in rows[0]))
    assert batch["position_ids"][0, len(exs[4].input_ids)].item() == 0  # positions restart per example
    with torch.no_grad():
        sums = causal_lm_loss_sums(model, batch["input_ids"], batch["targets"], target_positions(batch["targets"]),
                                   position_ids=batch["position_ids"])
        unmasked = causal_lm_loss_sums(model, batch["input_ids"], batch["targets"],
                                       target_positions(batch["targets"]))  # what plain concatenation would give
    expected = [_hf_loss_sum(model, ex) for ex in exs]
    assert sums.count == sum(n for _, n in expected) == batch["n_loss"] == collate_micro_batch(exs, 0)["n_loss"]
    assert sums.loss.item() == pytest.approx(sum(s for s, _ in expected), rel=1e-5)
    assert abs(unmasked.loss.item() - sums.loss.item()) > 1e-2  # the restarts really separate the examples


def test_loss_chunks_do_not_change_the_result(tiny, monkeypatch):
    from worker.ml.training import loss as lm_loss

    model, exs = tiny
    batch = collate_micro_batch(exs, pad_id=0)
    pos = target_positions(batch["targets"])
    with torch.no_grad():
        whole = causal_lm_loss_sums(model, batch["input_ids"], batch["targets"], pos)
        monkeypatch.setattr(lm_loss, "LOSS_CHUNK_TOKENS", 7)
        chunked = causal_lm_loss_sums(model, batch["input_ids"], batch["targets"], pos)
    assert chunked.loss.item() == pytest.approx(whole.loss.item(), rel=1e-6)
    assert chunked.correct.item() == whole.correct.item()


def test_evaluate_loss_is_token_weighted_and_restores_mode(tiny):
    model, exs = tiny
    model.train()
    res = evaluate_loss(model, exs, micro_batch_size=2, pad_id=0, device=torch.device("cpu"))
    assert model.training
    model.eval()
    expected = [_hf_loss_sum(model, ex) for ex in exs]
    assert res["tokens"] == sum(n for _, n in expected)
    assert res["loss"] == pytest.approx(sum(s for s, _ in expected) / res["tokens"], rel=1e-5)
    assert evaluate_loss(model, [], micro_batch_size=2, pad_id=0, device=torch.device("cpu"))["tokens"] == 0


@pytest.mark.parametrize("autocast", [None, torch.bfloat16])
def test_fused_head_loss_gives_the_same_loss_and_gradients(tiny_llama_dir, autocast, monkeypatch):
    from contracts.configs import FinetuneHyperparameters
    from worker.ml.training import loss as lm_loss
    from worker.ml.training.lora import build_lora_model

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    base.requires_grad_(False)
    model = build_lora_model(base, FinetuneHyperparameters(lora_dropout=0.0))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    exs = [Example(f"Say {i} words.", "", "word " * (i + 1), line=i) for i in range(5)]
    batch = collate_micro_batch(tokenize_examples(exs, load_tokenizer(tiny_llama_dir), cutoff_len=64,
                                                  train_on_inputs=True), pad_id=0)
    pos = target_positions(batch["targets"])
    params = [p for p in model.parameters() if p.requires_grad]
    monkeypatch.setattr(lm_loss, "LOSS_CHUNK_TOKENS", 16)  # several chunks

    fused = causal_lm_loss_sums(model, batch["input_ids"], batch["targets"], pos, autocast_dtype=autocast)
    (fused.loss / 50).backward()
    fused_grads = [p.grad.clone() for p in params]
    model.zero_grad()

    head = model.get_base_model().get_output_embeddings()
    head.weight.requires_grad_(True)  # a trainable head takes the unfused path
    plain = causal_lm_loss_sums(model, batch["input_ids"], batch["targets"], pos, autocast_dtype=autocast)
    (plain.loss / 50).backward()
    head.weight.requires_grad_(False)
    tol = 1e-5 if autocast is None else 2e-2
    assert fused.loss.item() == pytest.approx(plain.loss.item(), rel=tol)
    assert fused.correct.item() == plain.correct.item() and fused.count == plain.count
    for a, p in zip(fused_grads, params):
        assert torch.allclose(a, p.grad, rtol=tol, atol=tol * a.abs().max().item())
