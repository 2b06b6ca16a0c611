"""The DPO loss and rewards equal the paper's formula computed independently: one unbatched HF forward per
answer, log-probabilities summed by hand over the response tokens, the reference from a separate copy of
the base model, and -log(sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r)))) in float64 (Rafailov et al.
2023, eq. 7; trl's sigmoid loss, rewards and accuracy)."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from contracts.configs import DpoHyperparameters
from contracts.preference_records import PreferencePair
from worker.ml.training.data import IGNORE_INDEX, load_tokenizer
from worker.ml.training.devices import choose_precision
from worker.ml.training.preference.data import collate_pairs, tokenize_pairs
from worker.ml.training.preference.loss import dpo_loss, sequence_logprobs
from worker.ml.training.preference.reference import compute_reference_logprobs

BETA = 0.5
PAIRS = [PreferencePair("Name a primary colour.", "", "Red.", "Seven hundred and twelve.", line=1),
         PreferencePair("Translate to French.", "cat", "chat", "The cat sat on the mat, I believe.", line=2),
         PreferencePair("Capital of France?", "Be brief.", "Paris.", "Lyon, probably.",
                        messages=[{"role": "system", "content": "Be brief."},
                                  {"role": "user", "content": "Capital of France?"}], line=3)]


def _response_logprob(model, example) -> float:
    """sum_t log p(x_{t+1} | x_<=t) over the answer's tokens, from one forward of the lone sequence."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([example.input_ids])).logits[0].double()
    logp = logits.log_softmax(-1)
    return sum(logp[t, example.input_ids[t + 1]].item() for t in range(len(example.input_ids) - 1)
               if example.labels[t + 1] != IGNORE_INDEX)


@pytest.fixture
def models(tiny_llama_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(3)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    reference_copy = copy.deepcopy(base).eval()
    policy = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                             lora_dropout=0.0, init_lora_weights=False)).eval()
    return policy, reference_copy


def test_dpo_loss_and_rewards_equal_the_papers_formula(tiny_llama_dir, models):
    policy, reference_copy = models
    pairs = tokenize_pairs(PAIRS, load_tokenizer(tiny_llama_dir), DpoHyperparameters(prompt_template="alpaca"))
    assert len(pairs) == 3 and all(p.chosen.input_ids[:4] == p.rejected.input_ids[:4] for p in pairs)
    batch = collate_pairs(pairs, pad_id=0)
    with torch.no_grad():
        logps = sequence_logprobs(policy, batch["input_ids"], batch["targets"])
    reference = compute_reference_logprobs(policy, pairs, micro_batch_size=2, pad_id=0,
                                           precision=choose_precision("fp32", torch.device("cpu")),
                                           head_weight=None, adapter_off=True)
    terms = dpo_loss(logps[:3], logps[3:], reference[:, 0], reference[:, 1], BETA)
    for i, pair in enumerate(pairs):
        pi_c, pi_r = _response_logprob(policy, pair.chosen), _response_logprob(policy, pair.rejected)
        ref_c, ref_r = (_response_logprob(reference_copy, pair.chosen),
                        _response_logprob(reference_copy, pair.rejected))
        assert abs(pi_c - ref_c) > 1e-3  # the adapter really changes the policy
        x = BETA * ((pi_c - ref_c) - (pi_r - ref_r))
        loss = -math.log(1.0 / (1.0 + math.exp(-x)))
        assert logps[i].item() == pytest.approx(pi_c, abs=1e-5) and logps[3 + i].item() == pytest.approx(pi_r, abs=1e-5)
        assert reference[i].tolist() == pytest.approx([ref_c, ref_r], abs=1e-5)
        assert terms.losses[i].item() == pytest.approx(loss, abs=1e-5)
        assert terms.chosen_rewards[i].item() == pytest.approx(BETA * (pi_c - ref_c), abs=1e-5)
        assert terms.rejected_rewards[i].item() == pytest.approx(BETA * (pi_r - ref_r), abs=1e-5)
        assert terms.margins[i].item() == pytest.approx(BETA * ((pi_c - ref_c) - (pi_r - ref_r)), abs=1e-5)
        assert terms.correct[i].item() == float(pi_c - ref_c > pi_r - ref_r)


def test_the_loss_trains_only_the_adapter_and_its_reference_is_the_adapter_switched_off(tiny_llama_dir, models):
    policy, _ = models
    pairs = tokenize_pairs(PAIRS[:2], load_tokenizer(tiny_llama_dir), DpoHyperparameters())
    batch = collate_pairs(pairs, pad_id=0)
    policy.train()
    logps = sequence_logprobs(policy, batch["input_ids"], batch["targets"])
    terms = dpo_loss(logps[:2], logps[2:], logps[:2].detach(), logps[2:].detach(), BETA)
    assert terms.losses.tolist() == pytest.approx([math.log(2)] * 2, abs=1e-6)  # policy == reference
    terms.losses.sum().backward()
    grads = {n: p.grad for n, p in policy.named_parameters() if p.grad is not None}
    assert grads and all("lora_" in n for n in grads) and any(g.abs().sum() > 0 for g in grads.values())
    own = compute_reference_logprobs(policy, pairs, micro_batch_size=4, pad_id=0, head_weight=None,
                                     precision=choose_precision("fp32", torch.device("cpu")), adapter_off=False)
    assert policy.training  # the reference pass leaves the mode as it found it
    assert own[:, 0].tolist() == pytest.approx(logps[:2].tolist(), abs=1e-5)
