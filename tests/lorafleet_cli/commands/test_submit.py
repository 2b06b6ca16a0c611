"""``lorafleet generate``, ``batch`` and ``eval`` (with ``--follow``) and ``datasets`` against a live server
with a real worker (the eval scores the tiny base model against the adapter the shared fine-tune trained)."""
from __future__ import annotations

import json

import pytest

from tests.integration.teacher_stub import start_teacher_stub
from tests.lorafleet_cli.conftest import TINY

pytestmark = pytest.mark.integration


@pytest.fixture
def as_owner(trained, client_env, monkeypatch):
    env, job = trained
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return job


def test_batch_runs_to_its_output_file(as_owner, run, tmp_path):
    lines = [{"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": TINY, "messages": [{"role": "user", "content": f"Count to {i}."}], "max_tokens": 4}}
             for i in (1, 2)]
    path = tmp_path / "batch.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    followed = run("batch", path, "--batch-size", "2", "--follow")  # a person's view: the bar, then the end
    assert followed.code == 0, followed.err
    batch_id = followed.out.split("submitted ", 1)[1].split()[0]
    assert "tok/s" in followed.out and "ETA" in followed.out and f"{batch_id} succeeded" in followed.out
    batch = run("jobs", "show", batch_id, "--json").json  # the common job object and the batch's own fields
    assert batch["status"] == "succeeded" and batch["object"] == "batch"
    assert batch["request_counts"] == {"total": 2, "completed": 2, "failed": 0}
    out = tmp_path / "out.jsonl"
    assert run("files", "download", batch["output_file_id"], "-o", out).code == 0
    assert sorted(json.loads(line)["custom_id"] for line in out.read_text().splitlines()) == ["r1", "r2"]


def test_eval_scores_base_and_adapter(as_owner, run, tmp_path):
    rows = [{"instruction": "What is the secret word?", "input": "", "output": "The secret word is pineapple."},
            {"instruction": "Name the mascot of lorafleet.", "input": "", "output": "The mascot is a purple llama."}]
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    adapter = as_owner["result"]["fine_tuned_model"]
    result = run("eval", path, "-m", TINY, "-m", adapter, "--metric", "rouge_l", "--set", "sampling.max_new_tokens=8",
                 "--set", "batch_size=2", "--follow", "--json")
    assert result.code == 0, result.err
    job = result.json
    assert job["status"] == "succeeded" and [m["name"] for m in job["scores"]] == [TINY, adapter]
    assert all(0 <= m["scores"]["rouge_l"] <= 1 and m["examples"] == 2 for m in job["scores"])
    human = run("jobs", "follow", job["id"])  # ended: the final line only
    assert human.code == 0 and f"{job['id']} succeeded" in human.out


def test_generate_then_datasets(live_api, worker, user_key, run):
    stub, stop = start_teacher_stub()
    flags = ("--base-url", live_api.url, "--api-key", user_key)
    try:
        result = run("generate", "--teacher-model", "stub-teacher", "--teacher-url", stub.base_url,
                     "--teacher-key", "sk-stub", "--method", "alpaca", "-n", "4", "--set", "request_batch_size=2",
                     "--set", "teacher.api=completions", "--set", "teacher.max_retries=0", "--follow", "--json", *flags)
    finally:
        stop()
    assert result.code == 0, result.err
    job = result.json
    assert job["status"] == "succeeded" and job["n_kept"] >= 4 and job["dataset_id"]
    listed = run("datasets", "list", "--json", *flags).json["data"]
    assert [d["id"] for d in listed] == [job["dataset_id"]]
    shown = run("datasets", "show", job["dataset_id"], "--json", *flags).json
    assert shown["n_rows"] == job["n_kept"] and shown["n_rejected"] >= 1
    kept = run("datasets", "rows", job["dataset_id"], "--limit", "2", "--json", *flags).json
    assert len(kept["data"]) == 2 and kept["has_more"] and all(r["verdict"] == "kept" for r in kept["data"])
    rejected = run("datasets", "rows", job["dataset_id"], "--verdict", "rejected", "--json", *flags).json
    assert rejected["data"] and all(r["verdict"] == "rejected" and r["filter"] for r in rejected["data"])
    table = run("datasets", "rows", job["dataset_id"], "--verdict", "rejected", *flags)
    assert table.code == 0 and rejected["data"][0]["filter"] in table.out
    bad = run("datasets", "rows", job["dataset_id"], "--verdict", "kept", "--filter", "blacklist", *flags)
    assert bad.code == 2 and "param: filter" in bad.err
