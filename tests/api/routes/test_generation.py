"""``/v1/generation/jobs``: the teacher's key never shown, 422s naming the field, and resume with a new
``budget_usd`` (the kind's own resume route)."""
from __future__ import annotations

from api.schemas.generation import GenerationJobRead
from tests.api.routes.job_kit import KINDS, TEACHER, error_of, submit

URL = "/v1/generation/jobs"


def test_create_keeps_the_teacher_key_secret_and_names_bad_fields(client, alice, upload):
    r = client.post(URL, headers=alice.headers, json={"teacher": TEACHER, "num_instructions": 5,
                                                      "metadata": {"run": "1"}})
    assert r.status_code == 200, r.text
    job = GenerationJobRead.model_validate(r.json())
    assert job.has_teacher_api_key and TEACHER["api_key"] not in r.text and "api_key" not in job.teacher
    assert job.num_instructions == 5 and job.method == "self_instruct" and job.config["teacher"]["model"] == "teacher-x"
    cases = [({"teacher": TEACHER, "num_instructions": 0}, 422, "num_instructions"),
             ({"num_instructions": 5}, 422, "teacher"),
             ({"teacher": {**TEACHER, "temperature": 9}}, 422, "teacher.temperature"),
             ({"teacher": {"local": True, "model": "ft:nope"}}, 404, "teacher.model"),
             ({"teacher": TEACHER, "seed_file": "file-nope"}, 404, "seed_file")]
    for body, status, param in cases:
        r = client.post(URL, headers=alice.headers, json=body)
        assert r.status_code == status and error_of(r)["param"] == param, (body, r.text)


def test_resume_sets_a_new_budget(client, alice, upload):
    job = submit(client, upload, alice, KINDS["generation"], budget_usd=1.0)
    url = f"{URL}/{job['id']}"
    r = client.post(f"{url}/resume", headers=alice.headers, json={})
    assert r.status_code == 409 and error_of(r) | {"message": ""} == {
        "message": "", "type": "invalid_request_error", "param": "generation_job_id", "code": "invalid_state"}
    assert client.post(f"{url}/pause", headers=alice.headers).json()["status"] == "paused"
    r = client.post(f"{url}/resume", headers=alice.headers, json={"budget_usd": -1})
    assert r.status_code == 422 and error_of(r)["param"] == "budget_usd"
    r = client.post(f"{url}/resume", headers=alice.headers, json={"budget_usd": 5})
    assert r.status_code == 200, r.text
    resumed = GenerationJobRead.model_validate(r.json())
    assert resumed.status == "queued" and resumed.config["budget_usd"] == 5
    events = client.get(f"{url}/events", headers=alice.headers).json()["data"]
    assert [e["message"] for e in events][:2] == ["Job resumed; re-queued", "Budget cap set to 5.0 USD"]
    client.post(f"{url}/pause", headers=alice.headers)
    r = client.post(f"{url}/resume", headers=alice.headers)  # no body: the cap stays
    assert r.status_code == 200 and r.json()["config"]["budget_usd"] == 5
