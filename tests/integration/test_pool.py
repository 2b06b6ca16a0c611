"""The shared pool end to end, with real ``lorafleet dispatcher`` and ``lorafleet worker`` processes on real
Postgres and Redis: fair share between users, caps and priorities, queue positions and estimated starts
that agree with the order jobs really start in, placement by memory, preemption at a checkpoint, and
pause / resume without spending attempts."""
from __future__ import annotations

import io
import json
from itertools import pairwise
from pathlib import Path

import pytest

from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DATA = Path(__file__).parent / "data" / "tiny_alpaca.jsonl"
TERMINAL = ("succeeded", "failed", "cancelled")
TRAIN = [{"instruction": f"Say the word number {i}.", "input": "", "output": f"Word {i} is llama."} for i in range(8)]
SLOW_HP = {"batch_size": 4, "micro_batch_size": 4, "num_epochs": 8, "learning_rate": 1e-3, "cutoff_len": 64,
           "warmup_steps": 1, "lora_r": 4, "save_steps": 2, "logging_steps": 1}


def upload(client, headers, content: bytes, purpose="fine-tune", name="train.jsonl") -> str:
    r = client.post("/v1/files", headers=headers, files={"file": (name, io.BytesIO(content))}, data={"purpose": purpose})
    assert r.status_code == 200, r.text
    return r.json()["id"]


def submit_preflight(client, headers, file_id: str, priority: int = 0) -> str:
    r = client.post("/v1/preflight/jobs", headers=headers, json={
        "model": "smollm2-135m-instruct", "training_file": file_id, "priority": priority,
        "hyperparameters": {"cutoff_len": 64, "batch_size": 4, "micro_batch_size": 2}})
    assert r.status_code == 200, r.text
    return r.json()["id"]


def submit_fine_tuning(client, headers, file_id: str, hp: dict | None = None) -> str:
    r = client.post("/v1/fine_tuning/jobs", headers=headers, json={
        "model": "smollm2-135m-instruct", "training_file": file_id,
        "method": {"type": "supervised", "supervised": {"hyperparameters": hp or SLOW_HP}}})
    assert r.status_code == 200, r.text
    return r.json()["id"]


def submit_batch(client, headers, n_lines: int = 2) -> str:
    lines = [{"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "smollm2-135m-instruct", "max_tokens": 4,
                       "messages": [{"role": "user", "content": f"Count to {i}."}]}} for i in range(n_lines)]
    file_id = upload(client, headers, "".join(json.dumps(x) + "\n" for x in lines).encode(), "batch", "in.jsonl")
    r = client.post("/v1/batches", headers=headers, json={"input_file_id": file_id, "endpoint": "/v1/chat/completions",
                                                          "completion_window": "24h"})
    assert r.status_code == 200, r.text
    return r.json()["id"]


def job(client, headers, job_id: str) -> dict:
    r = client.get(f"/v1/jobs/{job_id}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def events(client, headers, job_id: str) -> list[dict]:
    r = client.get(f"/v1/jobs/{job_id}/events", headers=headers, params={"order": "asc", "limit": 1000})
    assert r.status_code == 200, r.text
    return r.json()["data"]


def first_start(client, headers, job_id: str) -> int:
    """The id of the job's first "Job started" event: event ids grow with time, across all jobs."""
    return min(int(e["id"][3:]) for e in events(client, headers, job_id) if e["message"].startswith("Job started"))


def wait_terminal(client, headers, job_ids, timeout=300) -> dict[str, dict]:
    def done():
        jobs = {j: job(client, headers, j) for j in job_ids}
        return all(v["status"] in TERMINAL for v in jobs.values()) and jobs

    return wait_for(done, timeout, 0.5, f"jobs {job_ids} to finish")


def steps_of(evts: list[dict]) -> list[int]:
    return [e["data"]["step"] for e in evts if e["type"] == "metrics" and "train_loss" in (e.get("data") or {})]


def test_fair_share_positions_and_estimated_starts_with_two_workers(api_client, make_user, start_worker):
    """User A queues 6 jobs, then user B queues 1: B's job starts before A's third; the queue positions
    and estimated starts the API showed agree with the order the jobs really started in."""
    (_, a), (_, b) = make_user(), make_user()
    content = DATA.read_bytes() * 400  # a few seconds of tokenizing per job
    file_a, file_b = upload(api_client, a, content), upload(api_client, b, content)
    a_jobs = [submit_preflight(api_client, a, file_a) for _ in range(6)]
    b_job = submit_preflight(api_client, b, file_b)
    owner = {**dict.fromkeys(a_jobs, a), b_job: b}

    def snapshot(jobs, with_start: bool):
        views = {j: job(api_client, owner[j], j) for j in jobs}
        ok = all(v["status"] == "queued" and v["queue_position"] and (v["estimated_start"] or not with_start)
                 for v in views.values())
        return ok and views

    # No worker yet: every job has its place in line (no estimated start: nothing could run it).
    line = wait_for(lambda: snapshot(owner, False), 30, 0.2, "queue positions")
    predicted = sorted(line, key=lambda j: line[j]["queue_position"])
    assert predicted.index(b_job) < predicted.index(a_jobs[2])
    # (jobs other tests left in this session's queue may sit ahead: only the relative order is ours)
    assert len({line[j]["queue_position"] for j in predicted}) == 7
    workers = [start_worker(queues=("io",)) for _ in range(2)]
    # Two workers registered, two jobs placed on them: the others now have estimated starts too.
    rest = predicted[2:]
    later = wait_for(lambda: snapshot(rest, True), 60, 0.2, "estimated starts")
    assert sorted(rest, key=lambda j: later[j]["queue_position"]) == rest
    assert all(later[x]["estimated_start"] <= later[y]["estimated_start"] for x, y in pairwise(rest))
    done = wait_terminal(api_client, a, a_jobs) | wait_terminal(api_client, b, [b_job])
    assert all(v["status"] == "succeeded" for v in done.values()), done

    def admitted_at(j):  # event ids grow with time: the order the dispatcher really admitted the jobs in
        return min(int(e["id"][3:]) for e in events(api_client, owner[j], j) if e["message"].startswith("Admitted"))

    assert sorted(owner, key=admitted_at) == predicted  # the order shown while waiting is the order they ran
    assert all(w.proc.poll() is None for w in workers)


def test_caps_and_priorities_hold(api_client, make_user, start_worker, admin_key):
    """A user capped at one running job never runs two at once, even with two free workers; their own
    jobs start by priority, then in submission order."""
    user_id, headers = make_user()
    r = api_client.patch(f"/v1/users/{user_id}", headers={"Authorization": f"Bearer {admin_key}"},
                         json={"max_running_jobs": 1})
    assert r.status_code == 200 and r.json()["max_running_jobs"] == 1, r.text
    file_id = upload(api_client, headers, DATA.read_bytes())
    low, high, mid = (submit_preflight(api_client, headers, file_id, p) for p in (0, 5, 1))
    line = wait_for(lambda: all((line := {j: job(api_client, headers, j)["queue_position"]
                                          for j in (low, high, mid)}).values()) and line, 30, 0.3, "positions")
    assert line[high] < line[mid] < line[low], line
    for _ in range(2):
        start_worker(queues=("io",))
    wait_for(lambda: any(job(api_client, headers, j)["status"] == "running" for j in (low, high, mid)), 90, 0.3,
             "a job to start")
    reason = job(api_client, headers, low)["waiting_reason"]
    assert reason and "max_running_jobs=1" in reason, reason
    done = wait_terminal(api_client, headers, [low, high, mid])
    assert all(v["status"] == "succeeded" for v in done.values())
    order = sorted(done, key=lambda j: first_start(api_client, headers, j))
    assert order == [high, mid, low]
    spans = sorted((done[j]["started_at"], done[j]["finished_at"]) for j in order)
    assert all(prev_end <= start for (_, prev_end), (start, _) in pairwise(spans))  # never two at once


def test_a_job_too_big_for_one_worker_waits_with_its_reason_then_runs_on_the_one_that_fits(
        api_client, make_user, start_worker, settings):
    _, headers = make_user()
    small = start_worker(queues=("gpu",), memory_gb=1.0, host="small-gpu")
    small_id = small.worker_id(settings)
    batch_id = submit_batch(api_client, headers)
    waiting = wait_for(lambda: (v := job(api_client, headers, batch_id))["waiting_reason"] and v, 30, 0.3, "a reason")
    assert "no registered worker fits" in waiting["waiting_reason"] and "1.0 GiB" in waiting["waiting_reason"]
    assert waiting["status"] == "queued"
    big = start_worker(queues=("gpu",), memory_gb=8.0, host="big-gpu")
    big_id = big.worker_id(settings)
    done = wait_terminal(api_client, headers, [batch_id], 240)[batch_id]
    assert done["status"] == "succeeded", done
    admitted = [e["data"]["worker_id"] for e in events(api_client, headers, batch_id)
                if e["message"].startswith("Admitted to worker")]
    assert admitted == [big_id] and small_id not in admitted
    # Its usage is in the ledger: GPU-seconds on the worker's device kind and the tokens it generated.
    usage = api_client.get("/v1/usage", headers=headers, params={"start_time": done["created_at"] - 3600,
                                                                  "group_by": "job_id"}).json()
    [mine] = [r for b in usage["data"] for r in b["results"] if r.get("job_id") == batch_id]
    assert mine["gpu_seconds"] > 0 and mine["tokens_generated"] > 0, mine


def test_an_over_share_job_is_preempted_at_a_checkpoint_and_resumes_where_it_stopped(
        api_client, make_user, start_worker):
    """A runs two fine-tuning jobs on a two-slot worker; B's batch job waits past the grace period, so
    the policy pauses A's newest job at its next checkpoint and re-queues it; B's job runs; A's job
    resumes from its checkpoint (steps continue) and succeeds, without spending an attempt."""
    (_, a), (_, b) = make_user(), make_user()
    file_id = upload(api_client, a, "".join(json.dumps(r) + "\n" for r in TRAIN * 2).encode())
    hp = {**SLOW_HP, "num_epochs": 8}
    start_worker(queues=("gpu", "io"), concurrency=2, env={"LORAFLEET_TORCH_THREADS": "1"})
    a_jobs = [submit_fine_tuning(api_client, a, file_id, hp) for _ in range(2)]
    wait_for(lambda: all(any(s >= 2 for s in steps_of(events(api_client, a, j))) for j in a_jobs), 300, 0.5,
             "both of A's jobs to train")
    b_job = submit_batch(api_client, b)
    done_b = wait_terminal(api_client, b, [b_job], 300)[b_job]
    assert done_b["status"] == "succeeded", done_b
    done_a = wait_terminal(api_client, a, a_jobs, 600)
    assert all(v["status"] == "succeeded" and v["attempt"] == 0 for v in done_a.values()), done_a
    preempted = [j for j in a_jobs if any("Preempted" in e["message"] for e in events(api_client, a, j))]
    assert len(preempted) == 1, [[e["message"] for e in events(api_client, a, j)] for j in a_jobs]
    evts = events(api_client, a, preempted[0])
    messages = [e["message"] for e in evts]
    assert any("re-queued" in m for m in messages)
    resumed = [e for e in evts if e["message"].startswith("Resumed from step")]
    assert resumed, messages
    resumed_at, from_step = int(resumed[0]["id"][3:]), resumed[0]["data"]["resumed_from_step"]
    after = [e["data"]["step"] for e in evts if e["type"] == "metrics" and "train_loss" in (e.get("data") or {})
             and int(e["id"][3:]) > resumed_at]
    assert after and min(after) == from_step + 1  # continues after its checkpoint
    b_started = first_start(api_client, b, b_job)
    assert any(int(e["id"][3:]) > b_started for e in evts if e["message"].startswith("Job started"))  # resumed later


def test_pause_and_resume_five_times_then_succeed_without_spending_attempts(api_client, make_user, start_worker):
    _, headers = make_user()
    file_id = upload(api_client, headers, "".join(json.dumps(r) + "\n" for r in TRAIN * 2).encode())
    job_id = submit_fine_tuning(api_client, headers, file_id, {**SLOW_HP, "num_epochs": 8, "save_steps": 1})
    start_worker(queues=("gpu", "io"))
    seen_steps = 0
    for round_ in range(5):
        wait_for(lambda seen=seen_steps: max(steps_of(events(api_client, headers, job_id)), default=0) > seen, 300, 0.3,
                 f"training to advance (round {round_})")
        r = api_client.post(f"/v1/fine_tuning/jobs/{job_id}/pause", headers=headers)
        assert r.status_code == 200, r.text
        wait_for(lambda: job(api_client, headers, job_id)["status"] == "paused", 120, 0.3, "the pause")
        seen_steps = max(steps_of(events(api_client, headers, job_id)))
        assert api_client.post(f"/v1/fine_tuning/jobs/{job_id}/resume", headers=headers).status_code == 200
    done = wait_terminal(api_client, headers, [job_id], 600)[job_id]
    assert done["status"] == "succeeded" and done["attempt"] == 0, done
    messages = [e["message"] for e in events(api_client, headers, job_id)]
    assert sum(m.startswith("Resumed from step") for m in messages) == 5
    steps = steps_of(events(api_client, headers, job_id))
    assert max(steps) == done["result"]["steps"]
