"""Issue 15 end to end: the official openai SDK runs a DPO job (OpenAI's ``method`` shape, a file mixing
OpenAI's DPO lines and Alpaca-style pairs) on the real base model through a real Celery worker, and its
reward accuracy on its training pairs ends above 0.5; then continued training: SFT, and DPO starting from
that job's checkpoint (``<adapter>:ckpt-step-N`` as ``model``), whose reference is the starting adapter."""
from __future__ import annotations

import io
import json
import math

import pytest

from tests.integration.test_fine_tuning_flow import wait_done

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BASE = "smollm2-135m-instruct"
THINGS = ["the sky", "the sea", "a sapphire", "a bluebird", "cornflowers", "a blueberry", "denim", "the ocean"]
# every pair in each step (so each step's metrics cover all the training pairs), 2 epochs; the short
# Alpaca template keeps the rows small (CPU time on a shared machine)
DPO_HP = {"beta": 0.1, "batch_size": 16, "micro_batch_size": 8, "n_epochs": 2, "learning_rate_multiplier": 10,
          "cutoff_len": 96, "warmup_steps": 0, "logging_steps": 1, "save_steps": 1, "prompt_template": "alpaca_short"}


def pair_rows(n: int = 16) -> list[dict]:
    """n pairs with one consistent preference (a short, confident 'Blue.' over a rambling wrong colour),
    half in OpenAI's DPO lines, half Alpaca-style."""
    rows = []
    for i in range(n):
        question = f"What colour is {THINGS[i % len(THINGS)]}? (question {i})"
        chosen, rejected = "Blue.", f"Hmm, I would say it is probably {['orange', 'brown', 'pink', 'grey'][i % 4]}."
        if i % 2:
            rows.append({"instruction": question, "input": "", "chosen": chosen, "rejected": rejected})
        else:
            rows.append({"input": {"messages": [{"role": "user", "content": question}]},
                         "preferred_output": [{"role": "assistant", "content": chosen}],
                         "non_preferred_output": [{"role": "assistant", "content": rejected}]})
    return rows


def upload(client, rows):
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    return client.files.create(file=("pairs.jsonl", io.BytesIO(data)), purpose="fine-tune")


def dpo_metrics(client, job_id: str) -> list[dict]:
    events = client.fine_tuning.jobs.list_events(job_id, limit=500).data
    return sorted((e.data for e in events if e.type == "metrics" and "reward_accuracy" in (e.data or {})),
                  key=lambda m: m["step"])


def test_sdk_dpo_job_learns_its_preferences(openai_client, start_worker):
    client = openai_client
    f = upload(client, pair_rows())
    job = client.fine_tuning.jobs.create(model=BASE, training_file=f.id, suffix="dpo",
                                         method={"type": "dpo", "dpo": {"hyperparameters": DPO_HP}})
    assert job.method.type == "dpo" and job.method.dpo.hyperparameters.beta == 0.1
    start_worker()
    done = wait_done(client, job.id, 840)
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model == f"ft:{BASE}:dpo:{job.id}" and done.method.type == "dpo"
    metrics = dpo_metrics(client, job.id)
    assert [m["step"] for m in metrics] == [1, 2]  # 16 pairs a step, 2 epochs: every step logged
    for m in metrics:
        assert {"train_loss", "rewards_chosen", "rewards_rejected", "reward_margin", "reward_accuracy"} <= set(m)
    assert metrics[0]["train_loss"] == pytest.approx(math.log(2), abs=1e-3)  # fresh adapter == reference (base)
    assert metrics[0]["reward_accuracy"] == 0  # equal rewards are not a right answer
    last = metrics[-1]  # the last epoch: each of the 16 training pairs once
    assert last["reward_accuracy"] > 0.5 and last["reward_margin"] > 0 and last["train_loss"] < math.log(2), metrics
    steps = [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job.id).data]
    assert sorted(steps) == [1, 2]


def test_dpo_continues_from_an_sft_checkpoint(openai_client, start_worker):
    client = openai_client
    rows = pair_rows(4)
    sft_rows = [{"instruction": r.get("instruction") or r["input"]["messages"][0]["content"], "input": "",
                 "output": "Blue, of course."} for r in rows]
    sft_file = client.files.create(file=("sft.jsonl", io.BytesIO("".join(json.dumps(r) + "\n" for r in sft_rows)
                                                                  .encode())), purpose="fine-tune")
    sft = client.fine_tuning.jobs.create(model=BASE, training_file=sft_file.id, suffix="sft", method={
        "type": "supervised", "supervised": {"hyperparameters": {
            "batch_size": 4, "micro_batch_size": 4, "n_epochs": 1, "learning_rate": 3e-3, "cutoff_len": 96,
            "warmup_steps": 0, "lora_r": 4, "save_steps": 1, "prompt_template": "alpaca_short"}}})
    start_worker()
    sft_done = wait_done(client, sft.id, 600)
    assert sft_done.status == "succeeded", sft_done.error
    checkpoint = f"{sft_done.fine_tuned_model}:ckpt-step-1"
    assert checkpoint in [c.fine_tuned_model_checkpoint for c in client.fine_tuning.jobs.checkpoints.list(sft.id).data]
    job = client.fine_tuning.jobs.create(model=checkpoint, training_file=upload(client, rows).id, suffix="more",
                                         method={"type": "dpo", "dpo": {"hyperparameters": {
                                             **DPO_HP, "n_epochs": 1, "lora_dropout": 0.0}}})
    assert job.model == BASE and job.hyperparameters.lora_r == 4  # the checkpoint's LoRA shape carries over
    assert job.hyperparameters.batch_size == 16 and job.method.dpo.hyperparameters.n_epochs == 1
    done = wait_done(client, job.id, 600)
    assert done.status == "succeeded", done.error
    events = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=200).data]
    assert any("reference policy: the starting adapter" in m for m in events), events
    metrics = dpo_metrics(client, job.id)
    # step 1 runs before any update: the policy is the starting checkpoint, which is also the reference
    assert metrics[0]["train_loss"] == pytest.approx(math.log(2), abs=1e-3)
    assert metrics[0]["rewards_chosen"] == pytest.approx(0, abs=1e-3)
