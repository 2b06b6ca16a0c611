"""Issue 2's end-to-end proofs on real Postgres, Redis and a real Celery worker process."""
from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest

from contracts.base_models import BUILTIN_MODELS
from contracts.memory_estimate import estimate_job_memory
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration
DATA = Path(__file__).parent / "data" / "tiny_alpaca.jsonl"


def upload(client, headers, content: bytes, purpose="fine-tune", name="train.jsonl"):
    return client.post("/v1/files", headers=headers, files={"file": (name, io.BytesIO(content))},
                       data={"purpose": purpose})


def follow_events(client, headers, job_id, timeout=180):
    """Poll the paged events (oldest first, with an 'after' cursor) until the job ends."""
    seen, cursor = [], None
    deadline = time.time() + timeout
    while time.time() < deadline:
        params = {"order": "asc", "limit": 100, **({"after": cursor} if cursor else {})}
        page = client.get(f"/v1/jobs/{job_id}/events", headers=headers, params=params).json()
        seen += page["data"]
        if page["data"]:
            cursor = page["last_id"]
        job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
        if job["status"] in ("succeeded", "failed", "cancelled") and not page["has_more"]:
            return job, seen
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish; events: {[e['message'] for e in seen]}")


def test_preflight_job_runs_on_a_real_worker(api_client, make_user, start_worker):
    _, headers = make_user()
    f = upload(api_client, headers, DATA.read_bytes())
    assert f.status_code == 200, f.text
    assert f.json()["info"] == {"format": "alpaca", "n_records": 6}
    job = api_client.post("/v1/preflight/jobs", headers=headers, json={
        "model": "smollm2-135m-instruct", "training_file": f.json()["id"],
        "hyperparameters": {"cutoff_len": 64, "batch_size": 4, "micro_batch_size": 2}}).json()
    assert job["status"] == "queued"
    waiting = wait_for(lambda: (j := api_client.get(f"/v1/preflight/jobs/{job['id']}", headers=headers).json())
                       ["waiting_reason"] and j, 30, 0.3, "the dispatcher to say why the job waits")
    assert waiting["queue_position"] >= 1 and "no registered worker serves queue 'io'" in waiting["waiting_reason"]
    start_worker()
    final, events = follow_events(api_client, headers, job["id"])
    assert final["status"] == "succeeded", final
    messages = [e["message"] for e in events]
    assert any("started" in m for m in messages) and messages[-1] == "Job succeeded"
    assert [int(e["id"][3:]) for e in events] == sorted(int(e["id"][3:]) for e in events)
    result = final["result"]
    assert result["n_examples"] == 6
    assert 0 < result["trainable_tokens"] < result["total_tokens"]  # prompts are masked by default
    assert len(result["samples"]) == 3
    assert final["progress"]["percent"] == 100.0
    # What the dispatcher would reserve for training with these hyperparameters (contracts.memory_estimate)
    hp = {"cutoff_len": 64, "batch_size": 4, "micro_batch_size": 2}
    want = estimate_job_memory("fine_tuning", {"hyperparameters": hp}, BUILTIN_MODELS["smollm2-135m-instruct"].shape)
    assert result["memory_estimate"]["bytes"] == want.bytes and result["memory_estimate"]["breakdown"] == want.breakdown

    # The live SSE stream replays the same events and ends with the terminal status.
    with api_client.stream("GET", f"/v1/jobs/{job['id']}/events/stream", headers=headers) as r:
        body = "".join(r.iter_text())
    streamed = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ") and '"id"' in line]
    assert [e["id"] for e in streamed] == [e["id"] for e in events]
    assert 'event: end' in body and '"succeeded"' in body


def test_isolation_between_users(api_client, make_user):
    _, alice = make_user()
    _, bob = make_user()
    f = upload(api_client, alice, DATA.read_bytes()).json()
    job = api_client.post("/v1/preflight/jobs", headers=alice, json={
        "model": "smollm2-135m-instruct", "training_file": f["id"]}).json()
    assert api_client.get(f"/v1/files/{f['id']}", headers=bob).status_code == 404
    assert api_client.get(f"/v1/files/{f['id']}/content", headers=bob).status_code == 404
    assert api_client.delete(f"/v1/files/{f['id']}", headers=bob).status_code == 404
    assert f["id"] not in [x["id"] for x in api_client.get("/v1/files", headers=bob).json()["data"]]
    assert api_client.get(f"/v1/jobs/{job['id']}", headers=bob).status_code == 404
    assert api_client.get(f"/v1/jobs/{job['id']}/events", headers=bob).status_code == 404
    assert api_client.post(f"/v1/jobs/{job['id']}/cancel", headers=bob).status_code == 404
    assert job["id"] not in [x["id"] for x in api_client.get("/v1/jobs", headers=bob).json()["data"]]
    # Bob cannot start a job on Alice's file either.
    r = api_client.post("/v1/preflight/jobs", headers=bob, json={"model": "smollm2-135m-instruct",
                                                                 "training_file": f["id"]})
    assert r.status_code == 404 and r.json()["error"]["param"] == "training_file"
    # Alice still sees everything, and can cancel her queued job.
    assert api_client.get(f"/v1/files/{f['id']}/content", headers=alice).content == DATA.read_bytes()
    assert api_client.post(f"/v1/jobs/{job['id']}/cancel", headers=alice).json()["status"] in ("cancelled", "running")


def test_auth_errors(api_client, make_user):
    assert api_client.get("/v1/files").status_code == 401
    r = api_client.get("/v1/files", headers={"Authorization": "Bearer lf-nope"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    user_id, headers = make_user()
    assert api_client.post("/v1/users", headers=headers, json={"name": "x"}).status_code == 403
    new_key = api_client.post(f"/v1/users/{user_id}/keys", headers=headers, json={"name": "ci"}).json()
    h2 = {"Authorization": f"Bearer {new_key['api_key']}"}
    assert api_client.get("/v1/me", headers=h2).json()["id"] == user_id
    assert api_client.delete(f"/v1/users/{user_id}/keys/{new_key['id']}", headers=headers).json()["revoked"]
    assert api_client.get("/v1/me", headers=h2).status_code == 401


def test_bad_input_is_refused_precisely_and_nothing_is_stored(api_client, make_user, settings):
    user_id, headers = make_user()
    cases = {
        b'{"instruction": "a", "output": "b"}\n{not json}\n': (2, "invalid_json"),
        b'{"instruction": "a", "output": "b"}\n{"instruction": "a"}\n': (2, "missing_field"),
        b'{"instruction": 5, "output": "b"}\n': (1, "wrong_type"),
        b'{"instruction": "a", "output": "   "}\n': (1, "empty_field"),
        b'{"instruction": "a", "output": "b", "colour": 1}\n': (1, "unrecognized_field"),
    }
    for content, (line, code) in cases.items():
        r = upload(api_client, headers, content)
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["param"] == "file" and f"line {line}" in err["message"]
        assert err["lines"][0]["line"] == line and err["lines"][0]["code"] == code
    assert upload(api_client, headers, b"").json()["error"]["code"] == "empty_file"
    big = (b'{"instruction": "a", "output": "' + b"x" * 1000 + b'"}\n') * 5000  # ~5 MB > 4 MB limit
    r = upload(api_client, headers, big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "file_too_large"
    assert upload(api_client, headers, b'{"a":1}\n', purpose="weird").json()["error"]["param"] == "purpose"
    assert api_client.get("/v1/files", headers=headers).json()["data"] == []
    assert not list((settings.artifacts_dir / "files" / user_id).glob("*"))  # no bytes kept, not even temp files
    # Unknown ids and bad hyperparameters.
    assert api_client.get("/v1/files/file-missing", headers=headers).status_code == 404
    assert api_client.get("/v1/jobs/ftjob-missing", headers=headers).status_code == 404
    good = upload(api_client, headers, DATA.read_bytes()).json()
    r = api_client.post("/v1/preflight/jobs", headers=headers, json={
        "model": "smollm2-135m-instruct", "training_file": good["id"], "hyperparameters": {"lora_r": 0}})
    assert r.status_code == 422 and r.json()["error"]["param"] == "hyperparameters.lora_r"
    r = api_client.post("/v1/preflight/jobs", headers=headers, json={
        "model": "smollm2-135m-instruct", "training_file": good["id"], "hyperparameters": {"warp_speed": 9}})
    assert r.status_code == 422 and r.json()["error"]["param"] == "hyperparameters.warp_speed"
    r = api_client.post("/v1/preflight/jobs", headers=headers, json={"model": "gpt-17", "training_file": good["id"]})
    assert r.status_code == 404 and r.json()["error"]["param"] == "model"
    assert api_client.get("/v1/jobs", headers=headers).json()["data"] == []


def test_worker_killed_mid_job_is_recovered(api_client, make_user, start_worker, shared_data):
    """SIGKILL the worker while a (large) preflight runs: the lease expires, the job is re-queued and a
    new worker finishes it."""
    _, headers = make_user()
    rows = [r for r in json.loads((shared_data / "alpaca_data_en.json").read_text()) if r["output"].strip()][:6000]
    content = "\n".join(json.dumps(r) for r in rows).encode()
    f = upload(api_client, headers, content).json()
    job = api_client.post("/v1/preflight/jobs", headers=headers, json={
        "model": "smollm2-135m-instruct", "training_file": f["id"]}).json()
    w1 = start_worker()
    wait_for(lambda: api_client.get(f"/v1/jobs/{job['id']}", headers=headers).json()["status"] == "running",
             120, what="job running")
    w1.kill()
    assert api_client.get(f"/v1/jobs/{job['id']}", headers=headers).json()["status"] == "running"
    start_worker()
    final, events = follow_events(api_client, headers, job["id"], timeout=240)
    assert final["status"] == "succeeded", final
    assert final["attempt"] == 1  # one attempt lost to the dead worker
    assert any("lease expired" in e["message"] for e in events)
    assert final["result"]["n_examples"] == 6000
