"""Issue 3 end to end: the official openai SDK drives fine-tuning of the real base model on a real
Celery worker (CPU); kill -9 recovery, cancel and validation failures."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tests.integration.conftest import wait_for
from tests.integration.stack import TRAIN  # the secret-word set, shared with the pool fault tests

pytestmark = [pytest.mark.integration, pytest.mark.slow]
FAST_HP = {"batch_size": 4, "micro_batch_size": 4, "num_epochs": 6, "learning_rate": 3e-3, "cutoff_len": 96,
           "warmup_steps": 1, "lora_r": 8, "save_steps": 2, "logging_steps": 1}


def jsonl(rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def upload(client, rows, name="train.jsonl"):
    return client.files.create(file=(name, io.BytesIO(jsonl(rows))), purpose="fine-tune")


def create_job(client, file_id, hp=None, suffix="test"):
    return client.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=file_id, suffix=suffix,
                                          method={"type": "supervised",
                                                  "supervised": {"hyperparameters": hp or FAST_HP}})


def wait_done(client, job_id, timeout=600):
    return wait_for(lambda: (j := client.fine_tuning.jobs.retrieve(job_id)).status in
                    ("succeeded", "failed", "cancelled") and j, timeout, 1.0, f"job {job_id} to finish")


def response_loss(base_dir: Path, adapter_dir: Path | None, rows) -> float:
    """Mean loss of the reference responses (prompt masked), with or without the adapter."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from contracts.prompts import render_prompt

    tok = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    if adapter_dir is not None:
        model = PeftModel.from_pretrained(model, adapter_dir)
    model.eval()
    losses = []
    with torch.no_grad():
        for r in rows:
            p = tok(render_prompt(r["instruction"], r["input"]))["input_ids"]
            full = tok(render_prompt(r["instruction"], r["input"]) + r["output"])["input_ids"] + [tok.eos_token_id]
            labels = [-100] * len(p) + full[len(p):]
            losses.append(model(input_ids=torch.tensor([full]), labels=torch.tensor([labels])).loss.item())
    return sum(losses) / len(losses)


def assert_run_config(folder: Path, artifact: str, step: int, file_id: str) -> None:
    """The folder's config.json holds every field, each true of this job (FAST_HP on TRAIN, on CPU)."""
    import hashlib
    from importlib import metadata

    from contracts.configs import FinetuneHyperparameters
    from contracts.run_config import RunConfig, read_run_config

    raw = json.loads((folder / "config.json").read_text())
    assert set(raw) == set(RunConfig.model_fields)
    cfg = read_run_config(folder)
    assert (cfg.artifact, cfg.step, cfg.total_steps) == (artifact, step, 12)
    assert cfg.hyperparameters == FinetuneHyperparameters.model_validate(FAST_HP)
    assert cfg.prompt_template == "alpaca"
    assert cfg.base_model.name == "smollm2-135m-instruct"
    base_config = Path(cfg.base_model.path) / "config.json"
    assert cfg.base_model.config_sha256 == hashlib.sha256(base_config.read_bytes()).hexdigest()
    [data_file] = cfg.data.files
    assert (data_file.role, data_file.file_id, data_file.size_bytes) == ("training", file_id, len(jsonl(TRAIN)))
    assert data_file.sha256 == hashlib.sha256(jsonl(TRAIN)).hexdigest()
    assert (cfg.data.n_train, cfg.data.n_val) == (len(TRAIN), 0) and len(cfg.data.train_examples_sha256) == 64
    assert {k: cfg.libraries[k] for k in ("transformers", "peft", "lorafleet")} == {
        k: metadata.version(k) for k in ("transformers", "peft", "lorafleet")}
    assert cfg.libraries["torch"] == metadata.version("torch") and cfg.libraries["python"]
    assert cfg.runtime.device == "cpu" and cfg.runtime.precision in ("bf16", "fp32")


def test_sdk_fine_tunes_the_real_base_model(openai_client, start_worker, base_model_dir, settings):
    client = openai_client
    f = upload(client, TRAIN)
    assert f.purpose == "fine-tune" and f.bytes > 0
    job = create_job(client, f.id)
    assert job.status in ("validating_files", "queued") and job.model == "smollm2-135m-instruct"
    start_worker()
    done = wait_done(client, job.id)
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model == f"ft:smollm2-135m-instruct:test:{job.id}"
    assert done.trained_tokens and done.trained_tokens > 0
    events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    metrics = [e for e in events if e.type == "metrics" and "train_loss" in (e.data or {})]
    assert metrics and all("train_mean_token_accuracy" in e.data for e in metrics)
    ckpts = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert ckpts and all(c.fine_tuned_model_checkpoint.startswith(done.fine_tuned_model + ":ckpt-step-")
                         for c in ckpts)
    assert ckpts[0].step_number >= ckpts[-1].step_number  # newest first
    assert done.fine_tuned_model in [m.id for m in client.models.list().data]
    # The adapter is listed, downloadable, a standard PEFT folder that plain peft loads, and it learned.
    import httpx

    auth = {"Authorization": f"Bearer {client.api_key}"}
    adapters = httpx.get(f"{client.base_url}adapters", headers=auth).json()["data"]
    (adapter,) = [a for a in adapters if a["name"] == done.fine_tuned_model]
    assert adapter["checkpoints"] and adapter["base_model"] == "smollm2-135m-instruct"
    tar = httpx.get(f"{client.base_url}adapters/{adapter['id']}/download", headers=auth)
    assert tar.status_code == 200 and tar.content[:2] == b"\x1f\x8b"
    from models.db import make_engine, make_sessionmaker
    from models.registry import Adapter, Checkpoint

    with make_sessionmaker(make_engine(settings.sqlalchemy_url))() as s:
        row = s.query(Adapter).filter_by(name=done.fine_tuned_model).one()
        checkpoint_rows = {c.step_number: c.path for c in s.query(Checkpoint).filter_by(job_id=job.id)}
    folder = settings.artifacts_dir / row.path  # stored relative to the artifact root
    assert (folder / "adapter_config.json").exists() and (folder / "adapter_model.safetensors").stat().st_size > 10_000
    # config.json (issue 9): complete and true in the adapter folder and in every checkpoint folder
    assert_run_config(folder, "adapter", 12, f.id)  # 8 examples, batch 4, 6 epochs
    assert sorted(checkpoint_rows) == [2, 4, 6, 8, 10, 12]
    for step, path in checkpoint_rows.items():
        assert_run_config(settings.artifacts_dir / path, "checkpoint", step, f.id)
    before, after = response_loss(base_model_dir, None, TRAIN), response_loss(base_model_dir, folder, TRAIN)
    assert after < 0.6 * before, (before, after)


def test_validation_fails_when_every_example_exceeds_cutoff(openai_client, start_worker):
    client = openai_client
    long_rows = [{"instruction": "Summarise. " + "word " * 200, "input": "", "output": "ok"}] * 3
    job = create_job(client, upload(client, long_rows).id, {**FAST_HP, "cutoff_len": 32})
    start_worker(queues=("io",))  # validation never needs the gpu pool
    done = wait_done(client, job.id, 180)
    assert done.status == "failed"
    assert done.error.param == "training_file" and "cutoff_len=32" in done.error.message
    assert client.fine_tuning.jobs.checkpoints.list(job.id).data == []


def test_bad_hyperparameters_are_422_with_the_field(openai_client):
    import openai

    f = upload(openai_client, TRAIN)
    for hp, field in (({"lora_r": -1}, "lora_r"), ({"micro_batch_size": 3, "batch_size": 8}, None),
                      ({"learning_rate": "fast"}, "learning_rate")):
        with pytest.raises(openai.UnprocessableEntityError) as err:
            create_job(openai_client, f.id, hp)
        body = err.value.body
        if field:
            assert body["param"].endswith(field), body
        else:
            assert "multiple of micro_batch_size" in body["message"]


def test_kill_9_resumes_from_the_last_checkpoint(openai_client, start_worker):
    client = openai_client
    job = create_job(client, upload(client, TRAIN * 2).id, {**FAST_HP, "num_epochs": 4, "save_steps": 2})
    w = start_worker()
    wait_for(lambda: len(client.fine_tuning.jobs.checkpoints.list(job.id).data) >= 1, 600, 0.5, "a checkpoint")
    w.kill()
    step_at_kill = max(c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job.id).data)
    start_worker()
    done = wait_done(client, job.id)
    assert done.status == "succeeded", done.error
    events = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=500).data]
    assert any("lease expired" in m for m in events)
    resumed = [e for e in client.fine_tuning.jobs.list_events(job.id, limit=500).data
               if e.message.startswith("Resumed from step")]
    assert resumed and resumed[0].data["resumed_from_step"] >= step_at_kill, events
    resumed_at = int(resumed[0].id[3:])
    after_resume = [e.data["step"] for e in client.fine_tuning.jobs.list_events(job.id, limit=500).data
                    if e.type == "metrics" and "train_loss" in (e.data or {}) and int(e.id[3:]) > resumed_at]
    # The second attempt continues after the checkpoint: steps do not restart from 1.
    assert after_resume and min(after_resume) == resumed[0].data["resumed_from_step"] + 1, after_resume


def test_cancel_stops_and_keeps_the_last_checkpoint(openai_client, start_worker):
    client = openai_client
    job = create_job(client, upload(client, TRAIN * 4).id, {**FAST_HP, "num_epochs": 20, "save_steps": 1})
    start_worker()
    wait_for(lambda: len(client.fine_tuning.jobs.checkpoints.list(job.id).data) >= 1, 600, 0.5, "a checkpoint")
    client.fine_tuning.jobs.cancel(job.id)
    done = wait_done(client, job.id, 300)
    assert done.status == "cancelled"
    assert client.fine_tuning.jobs.checkpoints.list(job.id).data
