"""``/v1/preflight/jobs``: create (inline auth), and the kind's own retrieve / list, which preflight jobs
lacked (they were reachable only under ``/v1/jobs``)."""
from __future__ import annotations

from api.schemas.common import ListRead
from api.schemas.jobs import JobRead
from tests.api.routes.job_kit import ALPACA_LINE, BASE, error_of

URL = "/v1/preflight/jobs"


def test_a_preflight_job_answers_under_its_own_path(client, alice, bob, upload):
    f = upload(alice, ALPACA_LINE)
    r = client.post(URL, headers=alice.headers, json={"model": BASE, "training_file": f["id"],
                                                      "hyperparameters": {"cutoff_len": 64}, "metadata": {"a": "b"}})
    assert r.status_code == 200, r.text
    job = JobRead.model_validate(r.json())
    assert job.object == "preflight.job" and job.status == "queued" and job.queue_position is None
    got = client.get(f"{URL}/{job.id}", headers=alice.headers)
    assert got.status_code == 200 and JobRead.model_validate(got.json()).metadata == {"a": "b"}
    assert [j.id for j in ListRead[JobRead].model_validate(client.get(URL, headers=alice.headers).json()).data] \
        == [job.id]
    r = client.get(f"{URL}/{job.id}", headers=bob.headers)
    assert r.status_code == 404 and error_of(r)["param"] == "preflight_job_id"


def test_bad_bodies_are_refused_naming_the_field(client, alice, bob, upload):
    f = upload(alice, ALPACA_LINE)["id"]
    cases = [({"hyperparameters": {"lora_r": 0}}, 422, "hyperparameters.lora_r"),
             ({"hyperparameters": {"lora_target_modules": ["__import__('os')"]}}, 422,
              "hyperparameters.lora_target_modules"),
             ({"model": "gpt-17"}, 404, "model"),
             ({"training_file": "file-nope"}, 404, "training_file"),
             ({"hyperparameters": {"init_adapter": "/etc"}}, 400, "hyperparameters.init_adapter"),
             ({"extra": 1}, 422, "extra")]
    for body, status, param in cases:
        r = client.post(URL, headers=alice.headers, json={"model": BASE, "training_file": f, **body})
        assert r.status_code == status and error_of(r)["param"] == param, (body, r.text)
    echoed = {"hyperparameters": {"init_adapter": None, "cutoff_len": 64}}  # a job's hyperparameters sent back
    assert client.post(URL, headers=alice.headers, json={"model": BASE, "training_file": f, **echoed}).status_code == 200
    assert client.post(URL, headers=bob.headers, json={"model": BASE, "training_file": f}).status_code == 404
    assert client.post(URL, json={"model": BASE, "training_file": f}).status_code == 401
