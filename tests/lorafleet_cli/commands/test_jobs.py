"""``lorafleet jobs``, ``finetune``, ``adapters`` and ``models`` against a live server with a real worker."""
from __future__ import annotations

import json
import tarfile
import time

import pytest

pytestmark = pytest.mark.integration


def test_finetune_follow_ends_with_the_job_and_its_adapter(trained, run, monkeypatch):
    env, job = trained
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert job["status"] == "succeeded" and job["result"]["fine_tuned_model"]
    shown = run("jobs", "show", job["id"], "--events", "50", "--json")
    assert shown.code == 0 and shown.json["id"] == job["id"]
    metrics = [e for e in shown.json["events"] if e["type"] == "metrics"]
    assert {e["data"]["step"] for e in metrics} >= {1, 2, 3, 4}
    listed = run("jobs", "list", "--kind", "fine_tuning", "--json")
    assert listed.code == 0 and [j["id"] for j in listed.json["data"]] == [job["id"]]
    human = run("jobs", "follow", job["id"])  # already ended: returns at once with its final line
    assert human.code == 0 and f"{job['id']} succeeded" in human.out


def test_adapters_and_models(trained, run, monkeypatch, tmp_path):
    env, job = trained
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    adapters = run("adapters", "list", "--json")
    (adapter,) = adapters.json["data"]
    assert adapter["name"] == job["result"]["fine_tuned_model"] and len(adapter["checkpoints"]) == 2
    assert run("adapters", "show", adapter["name"], "--json").json["id"] == adapter["id"]
    dest = tmp_path / "a.tar.gz"
    got = run("adapters", "download", adapter["id"], "-o", dest, "--json")
    assert got.code == 0 and got.json["bytes"] == dest.stat().st_size > 0
    with tarfile.open(dest) as tar:
        assert any(n.endswith("adapter_config.json") for n in tar.getnames())
    models = run("models", "list", "--json").json["data"]
    assert {"smollm2-135m-instruct", "tiny-cli", job["result"]["fine_tuned_model"]} <= {m["id"] for m in models}
    table = run("models", "list")
    assert table.code == 0 and job["result"]["fine_tuned_model"] in table.out


def test_adapters_export_as_gguf_gives_a_file_to_download(trained, run, monkeypatch, tmp_path):
    env, job = trained
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    adapter = job["result"]["fine_tuned_model"]
    bad = run("adapters", "export", adapter, "--format", "gguf", "--dtype", "q4")
    assert bad.code == 2 and "dtype" in bad.err
    exported = run("adapters", "export", adapter, "--format", "gguf", "--dtype", "f32", "--follow", "--json")
    assert exported.code == 0, exported.err
    result = exported.json["result"]
    assert result["dtype"] == "f32" and result["file_id"]
    dest = tmp_path / "model.gguf"
    got = run("files", "download", result["file_id"], "-o", dest, "--json")
    assert got.code == 0 and got.json["bytes"] == dest.stat().st_size == result["bytes"]
    assert dest.read_bytes()[:4] == b"GGUF"


def test_pause_resume_cancel_and_follow_of_a_cancelled_job(trained, run, monkeypatch, tmp_path):
    env, _ = trained
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    data = tmp_path / "t.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"Say {i}.", "input": "", "output": f"{i}."}) + "\n"
                            for i in range(40)))
    submitted = run("finetune", data, "--hp", "batch_size=1", "--hp", "micro_batch_size=1", "--hp", "save_steps=1",
                    "--hp", "cutoff_len=32", "--json")
    assert submitted.code == 0, submitted.err
    job_id = submitted.json["id"]
    assert run("jobs", "pause", job_id, "--json").code == 0
    deadline = time.time() + 120
    while run("jobs", "show", job_id, "--json").json["status"] != "paused":
        assert time.time() < deadline, "the job never paused"
        time.sleep(0.5)
    resumed = run("jobs", "resume", job_id, "--json")
    assert resumed.code == 0 and resumed.json["status"] in ("queued", "running")
    assert run("jobs", "resume", job_id).code == 2 or run("jobs", "show", job_id, "--json").json["status"] == "paused"
    assert run("jobs", "cancel", job_id, "--json").code == 0
    followed = run("jobs", "follow", job_id, "--json")
    assert followed.code == 1 and followed.json["status"] == "cancelled"
    assert f"job {job_id} cancelled" in followed.err


def test_a_failed_job_exits_1_with_its_error(live_api, worker, user_key, run, tmp_path):
    """Every example is over cutoff_len: the job fails in validation; following it exits 1 and prints why."""
    data = tmp_path / "long.jsonl"
    data.write_text(json.dumps({"instruction": "Summarise. " + "word " * 200, "input": "", "output": "ok"}) + "\n")
    result = run("finetune", data, "--hp", "cutoff_len=32", "--follow", "--json", "--base-url", live_api.url,
                 "--api-key", user_key)
    assert result.code == 1, result.out + result.err
    job = result.json
    assert job["status"] == "failed" and job["error"]["param"] == "training_file"
    assert "cutoff_len=32" in job["error"]["message"] and job["error"]["message"] in result.err
    assert "param: training_file" in result.err


def test_following_a_job_that_pauses_returns(live_api, worker, user_key, run):
    """A generation job whose teacher cannot be reached pauses (it waits for a resume): follow returns, exit 1."""
    teacher = ["--teacher-model", "nobody", "--teacher-url", "http://127.0.0.1:9/v1", "--method", "alpaca",
               "-n", "2", "--set", "teacher.max_retries=0", "--set", "teacher.timeout_s=2"]
    result = run("generate", *teacher, "--follow", "--base-url", live_api.url, "--api-key", user_key)
    assert result.code == 1, result.out + result.err
    assert "paused" in result.err and "teacher" in result.err and "lorafleet jobs resume genjob-" in result.err
    job_id = result.err.rsplit("lorafleet jobs resume ", 1)[1].split()[0]
    assert run("jobs", "cancel", job_id, "--base-url", live_api.url, "--api-key", user_key).code == 0


def test_an_unknown_id_exits_4(live_api, user_key, run):
    for argv in (("jobs", "show", "ftjob-nope"), ("jobs", "cancel", "ftjob-nope"), ("adapters", "show", "ft:nope"),
                 ("files", "show", "file-nope"), ("datasets", "show", "ds-nope")):
        result = run(*argv, "--base-url", live_api.url, "--api-key", user_key)
        assert result.code == 4, (argv, result.err)
        assert "nope" in result.err and "param:" in result.err and "Traceback" not in result.err
