"""Generation jobs end to end on real Postgres, Redis and Celery workers, against a real HTTP teacher:
dataset + rows API + training file a fine-tuning job takes; the teacher key never at rest in plain
text; a worker killed mid-job resumes from the ledger without paying twice; budget pause/resume;
bad input refused at the edge."""
from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import text

from contracts.configs import GenerationFilters
from tests.integration.conftest import wait_for
from tests.integration.teacher_stub import start_teacher_stub
from worker.ml.selfinstruct.filters import InstructionFilter
from worker.ml.selfinstruct.rouge import RougeFilter
from worker.ml.selfinstruct.seeds import load_seed_tasks

pytestmark = pytest.mark.integration
TEACHER_KEY = "sk-teacher-4f9c1d2e7a0b"
SEEDS = [
    {"id": f"t{i}", "name": f"task_{i}", "instruction": inst, "is_classification": False,
     "instances": [{"input": inp, "output": out}]}
    for i, (inst, inp, out) in enumerate([
        ("Give three tips for staying focused while studying.", "", "Silence your phone; take breaks; drink water."),
        ("Translate the sentence into French.", "The train leaves at noon.", "Le train part à midi."),
        ("Write a haiku about autumn rain.", "", "Cold drops on red leaves / gutters hum / puddles hold the moon"),
        ("Is this review positive or negative?", "The soup was cold and bland.", "Negative"),
        ("Summarize the paragraph in one sentence.", "Bees pollinate crops; without them fruit gets scarce.",
         "Bees matter because they pollinate crops."),
    ])
]


@pytest.fixture
def teacher():
    stub, stop = start_teacher_stub()
    yield stub
    stop()


@pytest.fixture
def db(settings):
    from models.db import make_engine

    engine = make_engine(settings.sqlalchemy_url)
    yield engine
    engine.dispose()


def jsonl(rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def upload(client, headers, content: bytes, purpose="seed_tasks", name="seeds.jsonl"):
    r = client.post("/v1/files", headers=headers, files={"file": (name, io.BytesIO(content))},
                    data={"purpose": purpose})
    assert r.status_code == 200, r.text
    return r.json()


def job_body(stub, **overrides) -> dict:
    body = {"method": "alpaca", "num_instructions": 10, "request_batch_size": 2,
            "teacher": {"base_url": stub.base_url, "model": "stub-teacher", "api": "completions",
                        "api_key": TEACHER_KEY, "max_concurrency": 2, "max_retries": 0}}
    return {**body, **overrides}


def purge_stale_io_messages(settings) -> None:
    """Drop the "run job X" messages earlier tests left on this session's io queue (jobs they cancelled
    or left queued with no worker). They are harmless (run_job ignores jobs that are not pending) but
    each costs a worker one child process, which would eat into this test's timeouts."""
    import redis

    client = redis.Redis.from_url(settings.redis_url)
    for key in client.scan_iter(f"{settings.namespace}io*"):
        if client.type(key) == b"list":
            client.delete(key)


def ready_worker(start_worker, settings, purge: bool = True):
    """A worker that is already consuming, so a submitted job is claimed at once."""
    if purge:
        purge_stale_io_messages(settings)
    worker = start_worker(queues=("io",))  # a remote teacher: the io pool alone runs generation
    wait_for(lambda: "ready." in worker.output(), 60, 0.2, "the worker to be ready")
    return worker


def wait_status(client, headers, job_id, statuses, timeout=180):
    return wait_for(lambda: (j := client.get(f"/v1/generation/jobs/{job_id}", headers=headers).json())["status"]
                    in statuses and j, timeout, 0.5, f"job {job_id} to reach {statuses}")


def all_events(client, headers, job_id) -> list[dict]:
    r = client.get(f"/v1/generation/jobs/{job_id}/events", headers=headers, params={"order": "asc", "limit": 1000})
    assert r.status_code == 200, r.text
    return r.json()["data"]


def all_rows(client, headers, ds_id, page=3, **params) -> list[dict]:
    rows, after = [], None
    while True:
        q = {**params, "limit": page, **({"after": after} if after is not None else {})}
        r = client.get(f"/v1/datasets/{ds_id}/rows", headers=headers, params=q)
        assert r.status_code == 200, r.text
        body = r.json()
        rows += body["data"]
        if not body["has_more"]:
            return rows
        assert len(body["data"]) == page and body["next_after"] == body["data"][-1]["index"]
        after = body["next_after"]


def test_generation_job_produces_a_dataset_a_fine_tuning_job_takes(api_client, make_user, start_worker, teacher,
                                                                  settings, db):
    _, alice = make_user()
    _, bob = make_user()
    seed_file = upload(api_client, alice, jsonl(SEEDS))
    worker = ready_worker(start_worker, settings)
    r = api_client.post("/v1/generation/jobs", headers=alice,
                        json={**job_body(teacher), "seed_file": seed_file["id"], "metadata": {"run": "e2e"}})
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["object"] == "generation.job" and job["method"] == "alpaca" and job["status"] in ("queued", "running")
    assert job["has_teacher_api_key"] and "api_key" not in job["teacher"] and job["metadata"] == {"run": "e2e"}
    with db.connect() as c:
        assert c.execute(text("select queue from jobs where id = :i"), {"i": job["id"]}).scalar() == "io"
    done = wait_status(api_client, alice, job["id"], ("succeeded", "failed", "cancelled", "paused"))
    assert done["status"] == "succeeded", done
    worker.stop()
    res = done["result"]
    assert res["n_instructions"] >= 10 and res["n_kept"] == done["n_kept"] > 0
    assert done["dataset_id"] == res["dataset_id"] and done["training_file"] == res["training_file"]
    assert done["progress"]["percent"] == 100.0 and done["progress"]["tokens"] == res["tokens"]["total"] > 0

    # one metrics event per round, with the round's verdicts
    events = all_events(api_client, alice, job["id"])
    rounds = [e for e in events if e["type"] == "metrics"]
    assert len(rounds) == res["rounds"] >= 1
    assert rounds[0]["message"].startswith("Round 1: accepted ")
    assert "blacklist: " in rounds[0]["message"] and "rouge_l: " in rounds[0]["message"]
    assert {"accepted", "rejected_by_filter", "prompt_tokens", "completion_tokens", "cost_usd"} <= set(rounds[0]["data"])
    assert sum(e["data"]["accepted"] for e in rounds) == res["n_kept"]
    assert events[-1]["message"] == "Job succeeded"

    # the dataset: stats, rows with provenance, rejects with their filter, owner only
    ds = api_client.get(f"/v1/datasets/{res['dataset_id']}", headers=alice).json()
    assert ds["job_id"] == job["id"] and ds["file_id"] == ds["training_file"] == res["training_file"]
    assert ds["n_rows"] == res["n_kept"] and ds["n_rejected"] == res["n_rejected"] > 0
    assert {"blacklist", "rouge_l", "unparseable"} <= set(ds["rejected_by_filter"])
    assert sum(ds["rejected_by_filter"].values()) == ds["n_rejected"]
    assert ds["tokens"] == res["tokens"] and ds["cost_usd"] == res["cost_usd"]
    assert [d["id"] for d in api_client.get("/v1/datasets", headers=alice).json()["data"]] == [ds["id"]]
    assert api_client.get("/v1/datasets", headers=bob).json()["data"] == []
    assert api_client.get(f"/v1/datasets/{ds['id']}", headers=bob).status_code == 404
    assert api_client.get(f"/v1/datasets/{ds['id']}/rows", headers=bob).status_code == 404
    assert api_client.get(f"/v1/generation/jobs/{job['id']}", headers=bob).status_code == 404
    assert [j["id"] for j in api_client.get("/v1/generation/jobs", headers=alice).json()["data"]] == [job["id"]]
    assert api_client.get("/v1/generation/jobs", headers=bob).json()["data"] == []

    kept = all_rows(api_client, alice, ds["id"])
    assert [r["index"] for r in kept] == list(range(ds["n_rows"]))
    assert all(r["verdict"] == "kept" and r["provenance"]["teacher_model"] == "stub-teacher" for r in kept)
    instructions = [r["instruction"] for r in kept]
    check = InstructionFilter("alpaca", GenerationFilters())
    assert all(check.rejection(i) is None for i in instructions)
    pool = RougeFilter(0.7, pool=[s["instruction"] for s in SEEDS])
    assert all(pool.add(i).kept for i in instructions)  # no near-duplicates, of seeds or of each other
    rouge_rejects = all_rows(api_client, alice, ds["id"], verdict="rejected", filter="rouge_l")
    assert len(rouge_rejects) == ds["rejected_by_filter"]["rouge_l"]
    assert all(r["filter"] == "rouge_l" and r["score"] > 0.7 and r["nearest"] for r in rouge_rejects)
    assert {r["nearest"] for r in rouge_rejects} <= {s["instruction"] for s in SEEDS} | set(instructions)
    rejected = all_rows(api_client, alice, ds["id"], page=50, verdict="rejected")
    assert len(rejected) == ds["n_rejected"] and all(r["verdict"] == "rejected" and r["filter"] for r in rejected)
    r = api_client.get(f"/v1/datasets/{ds['id']}/rows", headers=alice, params={"verdict": "kept", "filter": "x"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "filter"

    # the training file is Alpaca JSONL of the kept rows, and fine-tuning takes it (by file or dataset id)
    f = api_client.get(f"/v1/files/{ds['training_file']}", headers=alice).json()
    assert f["purpose"] == "fine-tune" and f["info"] == {"format": "alpaca", "n_records": ds["n_rows"]}
    lines = [json.loads(x) for x in api_client.get(f"/v1/files/{f['id']}/content", headers=alice).text.splitlines()]
    assert [set(x) for x in lines] == [{"instruction", "input", "output"}] * ds["n_rows"]
    assert [x["instruction"] for x in lines] == instructions
    for ref in (f["id"], ds["id"]):
        ft = api_client.post("/v1/fine_tuning/jobs", headers=alice,
                             json={"model": "smollm2-135m-instruct", "training_file": ref})
        assert ft.status_code == 200, ft.text
        assert ft.json()["status"] in ("validating_files", "queued") and ft.json()["training_file"] == f["id"]
        api_client.post(f"/v1/fine_tuning/jobs/{ft.json()['id']}/cancel", headers=alice)
    r = api_client.post("/v1/fine_tuning/jobs", headers=bob, json={"model": "smollm2-135m-instruct",
                                                                    "training_file": ds["id"]})
    assert r.status_code == 404

    # the teacher got the key; nothing at rest holds it in plain text, nor does the worker's log
    assert teacher.log and all(e["auth"] == f"Bearer {TEACHER_KEY}" for e in teacher.log)
    with db.connect() as c:
        dumps = c.execute(text("select params::text || result::text || progress::text || coalesce(error::text, '') "
                               "|| user_metadata::text from jobs")).scalars().all()
        dumps += c.execute(text("select message || coalesce(data::text, '') from job_events")).scalars().all()
        dumps += c.execute(text("select stats::text from datasets")).scalars().all()
        params = c.execute(text("select params from jobs where id = :i"), {"i": job["id"]}).scalar()
        usage = c.execute(text("select sum(teacher_tokens), sum(teacher_cost_usd), min(owner_id) from usage_records "
                               "where job_id = :i"), {"i": job["id"]}).one()
    assert not [d for d in dumps if TEACHER_KEY in d]
    assert params["teacher_api_key_encrypted"] and "api_key" not in params["config"]["teacher"]
    from models.secrets import decrypt_secret

    assert decrypt_secret(settings, params["teacher_api_key_encrypted"]) == TEACHER_KEY
    assert TEACHER_KEY not in worker.output() and "generation" in worker.output()
    work_dir = settings.artifacts_dir / "jobs" / job["id"]
    assert not [p for p in work_dir.rglob("*") if p.is_file() and TEACHER_KEY in p.read_text(errors="replace")]
    assert usage[0] == res["tokens"]["total"] and usage[1] == pytest.approx(res["cost_usd"])


def test_worker_killed_mid_job_resumes_from_the_ledger(api_client, make_user, start_worker, settings):
    """SIGKILL the worker while a teacher request is in flight; the next worker replays every answered
    request from the ledger, re-sends only the unanswered one, and finishes the job."""
    stub, stop = start_teacher_stub(hold_after=3, delay_s=0.2)
    try:
        _, headers = make_user()
        body = job_body(stub, num_instructions=30, request_batch_size=1)  # built-in seeds
        body["teacher"].update(api="chat", max_concurrency=1)
        w1 = ready_worker(start_worker, settings)
        job = api_client.post("/v1/generation/jobs", headers=headers, json=body).json()
        assert stub.holding.wait(120), "the job never reached its 4th teacher request"
        assert api_client.get(f"/v1/generation/jobs/{job['id']}", headers=headers).json()["status"] == "running"
        ready_worker(start_worker, settings, purge=False)  # the next worker waits, idle, for the re-queue
        w1.kill()
        assert len(stub.answered()) == 3
        stub.release()
        done = wait_status(api_client, headers, job["id"], ("succeeded", "failed", "cancelled", "paused"), 240)
        assert done["status"] == "succeeded", done
        assert done["attempt"] == 1 and done["result"]["n_instructions"] >= 30
        assert stub.answered_twice() == {}  # nothing answered was requested again
        assert done["result"]["requests_replayed"] == 3
        assert done["result"]["requests_sent"] == len(stub.answered()) - 3
        dropped = [e["prompt_sha"] for e in stub.log if not e["answered"]]
        assert len(dropped) == 1 and dropped[0] in stub.answered()[3:]  # only the unanswered one went again
        messages = [e["message"] for e in all_events(api_client, headers, job["id"])]
        assert any("lease expired" in m for m in messages)
        ds = api_client.get(f"/v1/datasets/{done['dataset_id']}", headers=headers).json()
        assert ds["n_rows"] == done["result"]["n_kept"] and ds["stats"]["n_instructions"] >= 30
        assert len({s["instruction"] for s in load_seed_tasks()}) > 3  # the built-in seeds were used
    finally:
        stop()


def test_budget_cap_pauses_the_job_and_a_higher_budget_resumes_it(api_client, make_user, start_worker, teacher,
                                                                  settings):
    _, headers = make_user()
    body = job_body(teacher, num_instructions=30, request_batch_size=1)
    body["teacher"].update(input_usd_per_1m=1000.0, output_usd_per_1m=1000.0, max_tokens=400)  # ~$0.5 a request
    body["budget_usd"] = 1.2
    ready_worker(start_worker, settings)  # one worker process serves both runs (a fresh child per task)
    job = api_client.post("/v1/generation/jobs", headers=headers, json=body).json()
    paused = wait_status(api_client, headers, job["id"], ("paused", "succeeded", "failed", "cancelled"))
    assert paused["status"] == "paused", paused
    assert paused["result"]["reason"] == "budget" and 0 < paused["result"]["cost_usd"] <= 1.2
    sent_before = len(teacher.answered())
    assert sent_before >= 1
    messages = [e["message"] for e in all_events(api_client, headers, job["id"])]
    assert any(m.startswith("Paused: the budget cap of $1.2000") for m in messages)
    assert messages[-1] == "Job paused"
    r = api_client.post(f"/v1/generation/jobs/{job['id']}/resume", headers=headers, json={"budget_usd": 100.0})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "queued" and r.json()["config"]["budget_usd"] == 100.0
    done = wait_status(api_client, headers, job["id"], ("succeeded", "failed", "cancelled", "paused"))
    assert done["status"] == "succeeded", done
    assert done["result"]["requests_replayed"] == sent_before and teacher.answered_twice() == {}
    assert done["result"]["cost_usd"] > paused["result"]["cost_usd"]
    r = api_client.post(f"/v1/generation/jobs/{job['id']}/resume", headers=headers, json={})
    assert r.status_code == 409


def test_bad_input_is_refused_at_submit(api_client, make_user, teacher, db):
    _, alice = make_user()
    _, bob = make_user()
    bad = jsonl(SEEDS[:2]) + b"{not json\n" + json.dumps({"instruction": "No instances here"}).encode() + b"\n"
    f = upload(api_client, alice, bad)
    r = api_client.post("/v1/generation/jobs", headers=alice, json={**job_body(teacher), "seed_file": f["id"]})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == "seed_file" and "line 3" in err["message"] and "line 4" in err["message"]
    assert [(x["line"], x["code"]) for x in err["lines"]] == [(3, "invalid_json"), (4, "invalid_seed_task")]
    assert "instances" in err["lines"][1]["message"]
    dup = upload(api_client, alice, jsonl(SEEDS[:3] + [SEEDS[1]]))
    r = api_client.post("/v1/generation/jobs", headers=alice, json={**job_body(teacher), "seed_file": dup["id"]})
    assert r.status_code == 400 and r.json()["error"]["lines"][0]["line"] == 4
    assert "duplicate id" in r.json()["error"]["message"]
    wrong_purpose = upload(api_client, alice, jsonl([{"instruction": "a", "output": "b"}]), purpose="fine-tune")
    r = api_client.post("/v1/generation/jobs", headers=alice,
                        json={**job_body(teacher), "seed_file": wrong_purpose["id"]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_file_purpose"
    good = upload(api_client, alice, jsonl(SEEDS))
    r = api_client.post("/v1/generation/jobs", headers=bob, json={**job_body(teacher), "seed_file": good["id"]})
    assert r.status_code == 404 and r.json()["error"]["param"] == "seed_file"
    # bad config: 422 naming the field; the key is never echoed back
    cases = [({"teacher": {**job_body(teacher)["teacher"], "api": "telepathy"}}, "teacher.api"),
             ({"teacher": {**job_body(teacher)["teacher"], "modle": "x"}}, "teacher.modle"),
             ({"num_instructions": 0}, "num_instructions"), ({"method": "magic"}, "method"),
             ({"filters": {"rouge": "sometimes"}}, "filters.rouge"), ({"colour": "red"}, "colour")]
    for override, param in cases:
        r = api_client.post("/v1/generation/jobs", headers=alice, json={**job_body(teacher), **override})
        assert r.status_code == 422, (override, r.text)
        assert r.json()["error"]["param"] == param and TEACHER_KEY not in r.text
    # a local teacher: a model of the caller's (404 naming teacher.model), and no URL or key of its own
    r = api_client.post("/v1/generation/jobs", headers=alice,
                        json={**job_body(teacher), "teacher": {"local": True, "model": "ft:smollm2-135m-instruct:x:y"}})
    assert r.status_code == 404 and r.json()["error"]["param"] == "teacher.model"
    r = api_client.post("/v1/generation/jobs", headers=alice, json={**job_body(teacher), "teacher": {
        "local": True, "model": "smollm2-135m-instruct", "base_url": "http://127.0.0.1:9/v1"}})
    assert r.status_code == 422 and r.json()["error"]["param"] == "teacher"
    assert "local teacher takes no base_url" in r.json()["error"]["message"]
    assert api_client.get("/v1/generation/jobs", headers=alice).json()["data"] == []
    # another user's dataset and job are invisible
    from models.file import Dataset

    with db.begin() as c:
        owner = c.execute(text("select owner_id from files where id = :i"), {"i": good["id"]}).scalar()
        c.execute(Dataset.__table__.insert().values(id="ds-alice-only", owner_id=owner, name="x", n_rows=0,
                                                    n_rejected=0, stats={}))
    assert api_client.get("/v1/datasets/ds-alice-only", headers=alice).status_code == 200
    for path in ("/v1/datasets/ds-alice-only", "/v1/datasets/ds-alice-only/rows"):
        r = api_client.get(path, headers=bob)
        assert r.status_code == 404 and r.json()["error"]["param"] == "dataset_id"
    job = api_client.post("/v1/generation/jobs", headers=alice, json=job_body(teacher)).json()
    assert api_client.get(f"/v1/generation/jobs/{job['id']}", headers=bob).status_code == 404
    assert api_client.post(f"/v1/generation/jobs/{job['id']}/cancel", headers=bob).status_code == 404
    assert api_client.get(f"/v1/generation/jobs/{job['id']}/events", headers=bob).status_code == 404
    assert api_client.post(f"/v1/generation/jobs/{job['id']}/cancel", headers=alice).json()["status"] == "cancelled"
