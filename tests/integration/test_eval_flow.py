"""Issue 4, eval jobs end to end: base model vs adapters on 20 user-oriented instructions, on a real
worker with the real base model; and a fine-tuning job expanded to its base, checkpoints and adapter."""
from __future__ import annotations

import io
import json
import math

import pytest

from tests.integration.adapter_rows import BASE, api, make_adapter_folders, register_adapters, user_id_of
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SAMPLING = {"max_new_tokens": 12, "temperature": 0}


@pytest.fixture(scope="module")
def adapter_folders(base_model_dir, tmp_path_factory):
    return make_adapter_folders(base_model_dir, tmp_path_factory.mktemp("eval-adapters"))


def upload_eval_rows(client, shared_data, n: int):
    lines = (shared_data / "user_oriented_instructions.jsonl").read_bytes().splitlines(keepends=True)[:n]
    return client.files.create(file=("eval.jsonl", io.BytesIO(b"".join(lines))), purpose="evals")


def wait_eval(client, job_id: str, timeout=600) -> dict:
    return wait_for(lambda: (j := api(client, "GET", f"evals/jobs/{job_id}").json())["status"] in
                    ("succeeded", "failed", "cancelled") and j, timeout, 1.0, f"eval job {job_id}")


def test_eval_scores_base_vs_adapter_side_by_side(openai_client, start_worker, shared_data, adapter_folders,
                                                   settings):
    from worker.ml.evaluation.scoring import rouge_l

    client = openai_client
    (adapter,) = register_adapters(settings, user_id_of(client), adapter_folders[:1])
    f = upload_eval_rows(client, shared_data, 25)
    r = api(client, "POST", "evals/jobs", json={"eval_file": f.id, "models": [BASE, adapter], "limit": 20,
                                                "metrics": ["rouge_l", "reference_loss"], "sampling": SAMPLING,
                                                "precision": "fp32"})
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["object"] == "eval.job" and job["models"] == [BASE, adapter] and job["status"] == "queued"
    start_worker()
    done = wait_eval(client, job["id"])
    assert done["status"] == "succeeded", done["error"]
    report = done["report"]
    assert [m["name"] for m in report["models"]] == [BASE, adapter]
    for m in report["models"]:
        assert m["examples"] == 20 and m["errors"] == 0
        assert 0 <= m["scores"]["rouge_l"] <= 1
        assert m["scores"]["reference_loss"] > 0
        assert math.isclose(m["scores"]["perplexity"], math.exp(m["scores"]["reference_loss"]), rel_tol=1e-6)
    assert report["models"][0]["scores"] != report["models"][1]["scores"]
    assert done["scores"] == [{k: m[k] for k in ("name", "scores", "errors", "examples")} for m in report["models"]]
    rows = report["examples"]
    assert len(rows) == 20 and [row["index"] for row in rows] == list(range(20))
    for row in rows:  # outputs side by side, each scored against the row's reference
        assert set(row["outputs"]) == {BASE, adapter} and row["reference"]
        for out in row["outputs"].values():
            assert out["error"] is None and out["reference_loss"] > 0
            assert out["rouge_l"] == pytest.approx(rouge_l(out["text"], row["reference"]))
    assert any(row["outputs"][BASE]["text"] != row["outputs"][adapter]["text"] for row in rows)
    mean = sum(row["outputs"][BASE]["rouge_l"] for row in rows) / 20
    assert report["models"][0]["scores"]["rouge_l"] == pytest.approx(mean)
    # The report is also a file of the user's.
    assert client.files.retrieve(done["report_file_id"]).purpose == "eval_report"
    listed = api(client, "GET", "evals/jobs").json()["data"]
    assert [j["id"] for j in listed] == [job["id"]] and "report" not in listed[0]


def test_fine_tuning_job_expands_to_base_checkpoints_and_adapter(openai_client, start_worker, shared_data,
                                                                 adapter_folders, settings):
    """A fine-tuning job (rows written directly: two checkpoints and a final adapter) scored in one eval job."""
    from models.crud.jobs import create_job
    from models.db import make_engine, make_sessionmaker
    from models.job import JobKind, JobStatus
    from models.registry import Adapter, Checkpoint

    client = openai_client
    owner = user_id_of(client)
    engine = make_engine(settings.sqlalchemy_url)
    with make_sessionmaker(engine)() as s:
        ft = create_job(session=s, owner_id=owner, kind=JobKind.fine_tuning, params={}, model=BASE)
        ft.status = JobStatus.succeeded.value
        name = f"ft:{BASE}:evaltest:{ft.id}"
        ft.result = {"fine_tuned_model": name}
        for step, folder in ((4, adapter_folders[0]), (2, adapter_folders[1])):
            s.add(Checkpoint(job_id=ft.id, owner_id=owner, step_number=step, model_name=f"{name}:ckpt-step-{step}",
                             path=str(folder)))
        s.add(Adapter(owner_id=owner, name=name, base_model=BASE, job_id=ft.id, path=str(adapter_folders[0])))
        s.commit()
        ft_id = ft.id
    engine.dispose()
    f = upload_eval_rows(client, shared_data, 3)
    r = api(client, "POST", "evals/jobs", json={"eval_file": f.id, "fine_tuning_job": ft_id, "models": [BASE],
                                                "metrics": ["rouge_l", "exact_match"],
                                                "sampling": {**SAMPLING, "max_new_tokens": 6}})
    assert r.status_code == 200, r.text
    expected = [BASE, f"{name}:ckpt-step-2", f"{name}:ckpt-step-4", name]
    assert r.json()["models"] == expected
    start_worker()
    done = wait_eval(client, r.json()["id"])
    assert done["status"] == "succeeded", done["error"]
    assert [m["name"] for m in done["report"]["models"]] == expected
    outs = done["report"]["examples"][0]["outputs"]
    assert outs[f"{name}:ckpt-step-4"]["text"] == outs[name]["text"]  # same folder, same answer
    assert all(m["errors"] == 0 and m["examples"] == 3 for m in done["report"]["models"])


def test_bad_eval_requests_are_refused(openai_client, shared_data, make_user):
    client = openai_client
    f = upload_eval_rows(client, shared_data, 2)
    cases = [({"eval_file": f.id, "models": ["ft:no:such:model"]}, 404, "models[0]"),
             ({"eval_file": f.id}, 422, None),
             ({"eval_file": f.id, "models": [BASE], "metrics": ["judge"]}, 422, None),
             ({"eval_file": f.id, "fine_tuning_job": "ftjob-nope"}, 404, "fine_tuning_job"),
             ({"eval_file": "file-nope", "models": [BASE]}, 404, "eval_file")]
    for body, status, param in cases:
        r = api(client, "POST", "evals/jobs", json=body)
        assert r.status_code == status, (body, r.text)
        if param:
            assert r.json()["error"]["param"] == param
    job = api(client, "POST", "evals/jobs", json={"eval_file": f.id, "models": [BASE]}).json()
    _, other = make_user()
    import httpx

    assert httpx.get(f"{client.base_url}evals/jobs/{job['id']}", headers=other).status_code == 404
    assert api(client, "POST", f"evals/jobs/{job['id']}/cancel").json()["status"] == "cancelled"


def test_kill_9_mid_eval_resumes_without_redoing_generations(openai_client, start_worker, shared_data, settings):
    client = openai_client
    n = 30
    f = upload_eval_rows(client, shared_data, n)
    r = api(client, "POST", "evals/jobs", json={"eval_file": f.id, "models": [BASE], "metrics": ["rouge_l"],
                                                "sampling": {"max_new_tokens": 8, "temperature": 0},
                                                "batch_size": 2, "precision": "fp32"})
    assert r.status_code == 200, r.text
    job = r.json()
    ledger = settings.artifacts_dir / "jobs" / job["id"] / "generations.jsonl"

    def finished() -> int:  # whole generations the worker has written out (they survive its kill)
        return ledger.read_bytes().count(b"\n") if ledger.exists() else 0

    w = start_worker()
    wait_for(lambda: finished() >= 4, 600, 0.05, "some finished generations")
    w.kill()
    seen = finished()
    assert seen < n, "the eval finished before the worker could be killed"
    start_worker()
    done = wait_eval(client, job["id"])
    assert done["status"] == "succeeded", done["error"]
    keys = [json.loads(x)["key"] for x in ledger.read_text().splitlines()]
    assert len(keys) == n and len(set(keys)) == n  # nothing generated twice, nothing lost
    events = api(client, "GET", f"jobs/{job['id']}/events", params={"limit": 500, "order": "asc"}).json()["data"]
    resumed = [e for e in events if e["message"].startswith("Resumed: ")]
    assert resumed and resumed[0]["data"]["resumed_generations"] >= seen, [e["message"] for e in events]
    report = done["report"]
    assert report["models"][0]["examples"] == n and report["models"][0]["errors"] == 0
    assert [row["index"] for row in report["examples"]] == list(range(n))


def test_judge_metric_rates_every_answer_with_the_judge_model(openai_client, start_worker, shared_data, settings):
    """An OpenAI-compatible judge (the HTTP stub, chat API): one judgement per answer with a reference,
    sent as the prompt itself, ratings in the report, its key stored encrypted only."""
    import hashlib

    from sqlalchemy import text

    from models.db import make_engine
    from tests.integration.teacher_stub import judge_rating, start_teacher_stub
    from worker.ml.evaluation.scoring import judge_prompt

    client = openai_client
    key = "sk-judge-0a1b2c3d4e"
    stub, stop = start_teacher_stub()
    try:
        f = upload_eval_rows(client, shared_data, 6)
        judge = {"base_url": stub.base_url, "model": "stub-judge", "api_key": key, "max_retries": 0}
        r = api(client, "POST", "evals/jobs", json={"eval_file": f.id, "models": [BASE], "metrics": ["rouge_l", "judge"],
                                                    "sampling": SAMPLING, "precision": "fp32", "judge": judge})
        assert r.status_code == 200, r.text
        job = r.json()
        assert job["judge"]["model"] == "stub-judge" and "api_key" not in job["judge"] and key not in r.text
        start_worker()
        done = wait_eval(client, job["id"])
    finally:
        stop()
    assert done["status"] == "succeeded", done["error"]
    rows = done["report"]["examples"]
    graded = [row for row in rows if row["reference"]]
    assert graded
    for row in graded:
        out = row["outputs"][BASE]
        assert out["judge"] == judge_rating(out["text"])
    expected = {hashlib.sha256(judge_prompt(row["instruction"], row["input"], row["reference"],
                                            row["outputs"][BASE]["text"]).encode()).hexdigest() for row in graded}
    assert {e["prompt_sha"] for e in stub.log} == expected and len(stub.log) == len(graded)
    assert all(e["api"] == "chat" and not e["continuation"] and e["auth"] == f"Bearer {key}" for e in stub.log)
    mean = sum(row["outputs"][BASE]["judge"] for row in graded) / len(graded)
    assert done["report"]["models"][0]["scores"]["judge"] == pytest.approx(mean)
    engine = make_engine(settings.sqlalchemy_url)
    with engine.connect() as c:
        params = c.execute(text("select params from jobs where id = :i"), {"i": job["id"]}).scalar()
        dumps = c.execute(text("select params::text || coalesce(result::text, '') from jobs")).scalars().all()
    engine.dispose()
    assert params["judge_api_key_encrypted"] and not [d for d in dumps if key in d]
    # the metric and the judge model go together
    for body in ({"metrics": ["judge"]}, {"metrics": ["rouge_l"], "judge": judge}):
        r = api(client, "POST", "evals/jobs", json={"eval_file": f.id, "models": [BASE], **body})
        assert r.status_code == 422 and "judge" in r.json()["error"]["message"], r.text
    r = api(client, "POST", "evals/jobs", json={"eval_file": f.id, "models": [BASE], "metrics": ["judge"],
                                                "judge": {"local": True, "model": "ft:nobody:x:y"}})
    assert r.status_code == 404 and r.json()["error"]["param"] == "judge.model"


def test_a_local_judge_runs_in_the_worker(openai_client, start_worker, shared_data, settings):
    """The base model judging its own answers in-process: one ledgered judgement per graded answer (a 135M
    judge seldom writes a rating: the scores may be None, the machinery is what is checked)."""
    client = openai_client
    f = upload_eval_rows(client, shared_data, 3)
    r = api(client, "POST", "evals/jobs", json={"eval_file": f.id, "models": [BASE], "metrics": ["judge"],
                                                "sampling": SAMPLING, "precision": "fp32",
                                                "judge": {"local": True, "model": BASE, "max_tokens": 24}})
    assert r.status_code == 200, r.text
    job = r.json()
    start_worker()
    done = wait_eval(client, job["id"])
    assert done["status"] == "succeeded", done["error"]
    judgements = (settings.artifacts_dir / "jobs" / job["id"] / "judgements.jsonl").read_text().splitlines()
    graded = [row for row in done["report"]["examples"] if row["reference"]]
    assert len(judgements) == len(graded) and all(json.loads(j)["completion_tokens"] > 0 for j in judgements)
    assert all(row["outputs"][BASE]["judge"] is None or 1 <= row["outputs"][BASE]["judge"] <= 10 for row in graded)
    events = [e["message"] for e in api(client, "GET", f"jobs/{job['id']}/events",
                                        params={"limit": 100, "order": "asc"}).json()["data"]]
    assert any(m.startswith(f"Judge: {BASE} in this worker") for m in events)
