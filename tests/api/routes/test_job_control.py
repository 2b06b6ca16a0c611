"""Admins act on anyone's job through the same routes (retrieve, events, pause, resume, cancel,
priority); other users still get 404s. ``priority`` is set at submission on every kind, or later through
``POST /v1/jobs/{id}/priority`` by the owner or an admin."""
from __future__ import annotations

import pytest

from tests.api.routes.job_kit import KINDS, error_of, submit, update_job


def job_row(app, job_id: str):
    from models.db import session_scope
    from models.job import Job

    with session_scope(app.state.session_factory) as s:
        job = s.get(Job, job_id)
        s.expunge(job)
        return job


def test_an_admin_pauses_resumes_and_cancels_another_users_job_while_others_get_404(client, app, admin, alice,
                                                                                    bob, upload):
    kind = KINDS["fine_tuning"]
    job_id = submit(client, upload, alice, kind)["id"]
    url = f"{kind.url}/{job_id}"
    for path in ("", "/events", "/checkpoints"):
        assert client.get(url + path, headers=admin.headers).status_code == 200
        r = client.get(url + path, headers=bob.headers)
        assert r.status_code == 404 and error_of(r)["param"] == "fine_tuning_job_id"
    assert client.get(f"/v1/jobs/{job_id}", headers=admin.headers).json()["id"] == job_id
    for verb in ("pause", "resume", "cancel", "priority"):
        r = client.post(f"{url}/{verb}", headers=bob.headers, json={"priority": 1})
        assert r.status_code == 404, verb
    update_job(app, job_id, status="running", lease_owner="worker-1")
    r = client.post(f"{url}/pause", headers=admin.headers)
    assert r.status_code == 200 and r.json()["status"] == "running"
    assert (job_row(app, job_id).pause_requested, job_row(app, job_id).pause_reason) == (True, "user")
    update_job(app, job_id, status="paused", lease_owner=None, pause_requested=False)
    r = client.post(f"{url}/resume", headers=admin.headers)
    assert r.status_code == 200 and r.json()["status"] == "queued"
    r = client.post(f"{url}/cancel", headers=admin.headers)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    events = client.get(f"{url}/events", headers=alice.headers, params={"limit": 50}).json()["data"]
    assert {"Job resumed; re-queued", "Job cancelled before it ran"} <= {e["message"] for e in events}


def test_an_admin_cancels_a_batch_of_another_user(client, admin, alice, bob, upload):
    kind = KINDS["batch"]
    batch_id = submit(client, upload, alice, kind)["id"]
    assert client.post(f"{kind.url}/{batch_id}/cancel", headers=bob.headers).status_code == 404
    r = client.post(f"{kind.url}/{batch_id}/cancel", headers=admin.headers)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert client.get(f"{kind.url}/{batch_id}", headers=alice.headers).json()["status"] == "cancelled"


@pytest.mark.parametrize("kind", list(KINDS.values()), ids=repr)
def test_priority_is_set_at_submission_on_every_kind(client, app, alice, upload, kind):
    job = submit(client, upload, alice, kind, priority=7)
    assert job_row(app, job["id"]).priority == 7
    assert client.get(f"/v1/jobs/{job['id']}", headers=alice.headers).json()["priority"] == 7
    assert "priority" not in job_row(app, job["id"]).params  # a column of its own, not a job parameter
    assert job_row(app, submit(client, upload, alice, kind)["id"]).priority == 0
    for bad in (101, -101, "high"):
        r = client.post(kind.url, headers=alice.headers, json={**kind.body(upload, alice), "priority": bad})
        assert r.status_code == 422 and error_of(r)["param"] == "priority"


def test_the_openai_sdk_sets_a_fine_tuning_jobs_priority_through_extra_body(client, app, alice, upload):
    import openai

    sdk = openai.OpenAI(base_url="http://testserver/v1", api_key=alice.key, http_client=client, max_retries=0)
    training_file = upload(alice, '{"instruction": "Say hi", "input": "", "output": "hi"}\n')["id"]
    job = sdk.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=training_file,
                                      extra_body={"priority": -5})
    assert job_row(app, job.id).priority == -5


def test_the_owner_or_an_admin_reprioritises_a_job(client, app, admin, alice, bob, upload):
    job_id = submit(client, upload, alice, KINDS["generation"])["id"]
    url = f"/v1/jobs/{job_id}/priority"
    r = client.post(url, headers=alice.headers, json={"priority": 50})
    assert r.status_code == 200 and r.json()["priority"] == 50 and job_row(app, job_id).priority == 50
    r = client.post(url, headers=admin.headers, json={"priority": -20})
    assert r.status_code == 200 and job_row(app, job_id).priority == -20
    r = client.post(url, headers=bob.headers, json={"priority": 100})
    assert r.status_code == 404 and error_of(r)["param"] == "job_id" and job_row(app, job_id).priority == -20
    for body, param in (({"priority": 101}, "priority"), ({}, "priority"), ({"priority": 1, "x": 1}, "x")):
        r = client.post(url, headers=alice.headers, json=body)
        assert r.status_code == 422 and error_of(r)["param"] == param
    client.post(f"/v1/generation/jobs/{job_id}/cancel", headers=alice.headers)
    r = client.post(url, headers=alice.headers, json={"priority": 1})
    assert r.status_code == 409 and error_of(r)["code"] == "invalid_state" and error_of(r)["param"] == "job_id"
