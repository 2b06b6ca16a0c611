"""``/v1/evals/jobs``: create, errors naming the field, and retrieve with the job's report."""
from __future__ import annotations

import json

from api.schemas.evals import EvalJobRead, EvalJobReportRead
from tests.api.routes.job_kit import ALPACA_LINE, BASE, KINDS, error_of, submit, update_job

URL = "/v1/evals/jobs"


def test_create_and_bad_bodies(client, alice, upload):
    f = upload(alice, ALPACA_LINE, "evals")["id"]
    r = client.post(URL, headers=alice.headers, json={"eval_file": f, "models": [BASE, BASE], "limit": 3})
    assert r.status_code == 200, r.text
    job = EvalJobRead.model_validate(r.json())
    assert job.models == [BASE] and job.metrics == ["rouge_l", "exact_match"] and job.limit == 3
    assert "report" not in r.json() and job.scores is None
    wrong_purpose = upload(alice, ALPACA_LINE)["id"]
    cases = [({"eval_file": f, "models": [BASE], "metrics": ["bogus"]}, 422, "metrics.0"),
             ({"eval_file": f, "models": ["ft:nope"]}, 404, "models[0]"),
             ({"eval_file": f, "fine_tuning_job": "ftjob-nope"}, 404, "fine_tuning_job"),
             ({"eval_file": wrong_purpose, "models": [BASE]}, 400, "eval_file"),
             ({"eval_file": f}, 422, None)]  # neither models nor a fine-tuning job
    for body, status, param in cases:
        r = client.post(URL, headers=alice.headers, json=body)
        assert r.status_code == status and error_of(r)["param"] == param, (body, r.text)


def test_retrieve_adds_the_report_once_written(client, app, alice, upload):
    job = submit(client, upload, alice, KINDS["eval"])
    report = {"base_model": BASE, "models": [{"name": BASE, "scores": {"rouge_l": 0.5}}], "examples": []}
    path = app.state.settings.artifacts_dir / "files" / alice.id / "file-report1"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report))
    scores = [{"name": BASE, "scores": {"rouge_l": 0.5}, "errors": 0, "examples": 1}]
    before = client.get(f"{URL}/{job['id']}", headers=alice.headers).json()
    assert "report" not in before and before["error"] is None  # not written yet: no report key
    update_job(app, job["id"], status="succeeded", result={"report_file_id": "file-report1", "models": scores})
    got = EvalJobReportRead.model_validate(client.get(f"{URL}/{job['id']}", headers=alice.headers).json())
    assert got.report == report and got.scores == scores and got.report_file_id == "file-report1"
    brief = client.get(f"{URL}/{job['id']}", headers=alice.headers, params={"include_report": False}).json()
    assert "report" not in EvalJobRead.model_validate(brief).model_dump() and brief["scores"] == scores
    assert "report" not in brief
    listed = client.get(URL, headers=alice.headers).json()["data"]
    assert [j["id"] for j in listed] == [job["id"]] and "report" not in listed[0]
    update_job(app, job["id"], status="failed", error={"code": "boom", "message": "no"})
    failed = client.get(f"{URL}/{job['id']}", headers=alice.headers).json()
    assert failed["error"] == {"code": "boom", "message": "no", "param": None}
