"""Issue 5 end to end with a real teacher: lorafleet's own OpenAI-compatible endpoint (``lorafleet serve``
on the embedded base model, behind the API) writes a Self-Instruct dataset through the openai SDK, and a
fine-tuning job trains on it; then the same kind of job with the base model as an in-process teacher
on the gpu queue. A 135M teacher writes poor tasks: the tests check the machinery, not the prose."""
from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import text

from contracts.configs import GenerationFilters
from tests.integration.adapter_rows import BASE, api
from tests.integration.conftest import wait_for
from worker.ml.evaluation.rouge_l import contains_cjk
from worker.ml.selfinstruct.filters import InstructionFilter, invalid_instance_reason
from worker.ml.selfinstruct.rouge import RougeFilter
from worker.ml.selfinstruct.seeds import load_seed_tasks

pytestmark = [pytest.mark.integration, pytest.mark.slow]
FT_HP = {"batch_size": 2, "micro_batch_size": 2, "num_epochs": 1, "learning_rate": 1e-3, "cutoff_len": 256,
         "warmup_steps": 0, "lora_r": 8, "logging_steps": 1}


def english_seed_file(client):
    """The shipped seed tasks written in English (the Chinese ones pull a 135M model into Chinese)."""
    seeds = [s for s in load_seed_tasks() if not contains_cjk(json.dumps(s, ensure_ascii=False))]
    content = "".join(json.dumps(s) + "\n" for s in seeds).encode()
    return client.files.create(file=("seeds.jsonl", io.BytesIO(content)), purpose="seed_tasks"), seeds


def job_body(seed_file_id: str, teacher: dict, num_instructions: int) -> dict:
    """Published Self-Instruct decoding (sampled bootstrap, greedy instances), a small job. A round of 4
    prompts gets 7-10 instructions past the filters, but only 1-2 of them also get a valid instance
    from a 135M teacher (it often repeats itself until max_tokens, and a truncated instance is dropped),
    so the remote job asks for 12 (about 2 rounds) to make an empty dataset unlikely. The local teacher
    is reproducible (sampling seeded per request, the same batches in one process): one round of 6."""
    return {"method": "self_instruct", "seed_file": seed_file_id, "num_instructions": num_instructions,
            "request_batch_size": 4, "max_rounds": 6, "max_instances_per_task": 2,
            "teacher": {"max_tokens": 256, **teacher}}


def wait_generation(client, job_id: str, timeout=900) -> dict:
    return wait_for(lambda: (j := api(client, "GET", f"generation/jobs/{job_id}").json())["status"] in
                    ("succeeded", "failed", "cancelled", "paused") and j, timeout, 1.0, f"generation job {job_id}")


def check_dataset(client, job: dict, seeds: list[dict]) -> list[dict]:
    """The job's dataset: every kept row passes the published filters again; returns the training rows."""
    res = job["result"]
    assert res["n_kept"] >= 1 and res["tokens"]["completion"] > 0 and res["requests_sent"] > 0
    ds = api(client, "GET", f"datasets/{res['dataset_id']}").json()
    assert ds["n_rows"] == res["n_kept"] and ds["training_file"] == res["training_file"]
    rows = api(client, "GET", f"datasets/{ds['id']}/rows", params={"limit": 100}).json()["data"]
    assert len(rows) == ds["n_rows"]
    check = InstructionFilter("self_instruct", GenerationFilters())
    pool = RougeFilter(0.7, pool=[s["instruction"] for s in seeds])
    for row in rows:
        assert row["verdict"] == "kept" and row["provenance"]["teacher_model"] == job["teacher"]["model"]
        assert check.rejection(row["instruction"]) is None
        assert row["output"].strip() and invalid_instance_reason(row["input"], row["output"]) is None
    # no near-duplicate of a seed or of another kept task (a task may keep up to max_instances_per_task
    # rows, one per valid instance: those share their instruction)
    for instruction in dict.fromkeys(row["instruction"] for row in rows):
        assert pool.add(instruction).kept, instruction
    content = client.files.content(res["training_file"]).text
    lines = [json.loads(x) for x in content.splitlines()]
    assert [x["instruction"] for x in lines] == [r["instruction"] for r in rows]
    return lines


def test_lorafleet_as_its_own_teacher_then_fine_tuning_on_the_dataset(openai_client, live_api, inference_server,
                                                                      start_worker, settings, db_session_factory):
    client = openai_client
    seed_file, seeds = english_seed_file(client)
    teacher = {"base_url": f"{live_api.url}/v1", "model": BASE, "api": "completions", "api_key": client.api_key,
               "max_concurrency": 4}
    r = api(client, "POST", "generation/jobs", json=job_body(seed_file.id, teacher, 12))
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["teacher"]["base_url"] == teacher["base_url"] and job["has_teacher_api_key"]
    start_worker(queues=("io", "gpu"))
    done = wait_generation(client, job["id"])
    assert done["status"] == "succeeded", done.get("error")
    with db_session_factory() as s:  # a remote teacher holds no GPU: the io pool ran the job
        assert s.execute(text("select queue from jobs where id = :i"), {"i": job["id"]}).scalar() == "io"
    lines = check_dataset(client, done, seeds)

    # a fine-tuning job trains on the generated dataset (by its training file)
    ft = client.fine_tuning.jobs.create(model=BASE, training_file=done["training_file"], suffix="selfteach",
                                        method={"type": "supervised", "supervised": {"hyperparameters": FT_HP}})
    trained = wait_for(lambda: (j := client.fine_tuning.jobs.retrieve(ft.id)).status in
                       ("succeeded", "failed", "cancelled") and j, 600, 1.0, "the fine-tuning job")
    assert trained.status == "succeeded", trained.error
    assert trained.trained_tokens > 0 and trained.fine_tuned_model == f"ft:{BASE}:selfteach:{ft.id}"
    steps = {e.data["step"] for e in client.fine_tuning.jobs.list_events(ft.id, limit=100).data
             if e.type == "metrics" and "train_loss" in (e.data or {})}
    assert steps == set(range(1, -(-len(lines) // FT_HP["batch_size"]) + 1))  # one step per batch of the rows
    assert trained.fine_tuned_model in [m.id for m in client.models.list().data]


def test_a_local_teacher_runs_in_the_worker_on_the_gpu_queue(openai_client, start_worker, db_session_factory):
    client = openai_client
    seed_file, seeds = english_seed_file(client)
    r = api(client, "POST", "generation/jobs",
            json=job_body(seed_file.id, {"local": True, "model": BASE, "api": "completions"}, 6))
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["teacher"]["local"] is True and not job["has_teacher_api_key"]
    with db_session_factory() as s:
        assert s.execute(text("select queue from jobs where id = :i"), {"i": job["id"]}).scalar() == "gpu"
    start_worker(queues=("gpu",))
    done = wait_generation(client, job["id"])
    assert done["status"] == "succeeded", done.get("error")
    check_dataset(client, done, seeds)
    events = [e["message"] for e in api(client, "GET", f"generation/jobs/{job['id']}/events",
                                        params={"order": "asc", "limit": 100}).json()["data"]]
    assert any(f"teacher {BASE} in this worker" in m for m in events)
