"""``/v1/fine_tuning/jobs``: OpenAI's shape (checked with the SDK's own types), 422s naming the field as
the request wrote it (lora_target_modules included), and checkpoint paging."""
from __future__ import annotations

from openai.types.fine_tuning import FineTuningJob
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint

from api.schemas.common import ListRead
from api.schemas.fine_tuning import CheckpointRead, FineTuningJobRead
from tests.api.routes.job_kit import ALPACA_LINE, BASE, error_of

URL = "/v1/fine_tuning/jobs"


def test_a_job_in_openai_shape(client, alice, upload):
    f = upload(alice, ALPACA_LINE)
    body = {"model": BASE, "training_file": f["id"], "suffix": "demo", "seed": 7, "metadata": {"team": "a"},
            "method": {"type": "supervised", "supervised": {"hyperparameters": {
                "n_epochs": 2, "batch_size": 8, "learning_rate_multiplier": 2, "micro_batch_size": 4}}}}
    r = client.post(URL, headers=alice.headers, json=body)
    assert r.status_code == 200, r.text
    job = r.json()
    FineTuningJobRead.model_validate(job)
    sdk = FineTuningJob.model_validate(job)
    assert sdk.object == "fine_tuning.job" and sdk.status == "validating_files" and sdk.suffix == "demo"
    assert sdk.hyperparameters.n_epochs == 2 and sdk.hyperparameters.batch_size == 8
    assert sdk.hyperparameters.learning_rate_multiplier == 2.0 and sdk.seed == 7
    assert sdk.method.supervised.hyperparameters.n_epochs == 2 and sdk.training_file == f["id"]
    assert job["hyperparameters"]["learning_rate"] == 6e-4 and job["metadata"] == {"team": "a"}
    listed = client.get(URL, headers=alice.headers).json()
    assert [FineTuningJob.model_validate(j).id for j in listed["data"]] == [job["id"]]


def test_bad_bodies_are_422s_naming_the_field(client, alice, bob, upload):
    f = upload(alice, ALPACA_LINE)["id"]

    def create(**body):
        return client.post(URL, headers=alice.headers, json={"model": BASE, "training_file": f, **body})

    cases = [({"hyperparameters": {"lora_r": 0}}, "hyperparameters.lora_r"),
             ({"hyperparameters": {"warp_speed": 9}}, "hyperparameters.warp_speed"),
             ({"method": {"supervised": {"hyperparameters": {"lora_r": 0}}}},
              "method.supervised.hyperparameters.lora_r"),
             ({"suffix": "no spaces"}, "suffix"),
             ({"hyperparameters": {"lora_target_modules": ["__import__('os')"]}},
              "hyperparameters.lora_target_modules"),
             ({"method": {"supervised": {"hyperparameters": {"lora_target_modules": ["q_proj", "attn"]}}}},
              "method.supervised.hyperparameters.lora_target_modules")]
    for body, param in cases:
        r = create(**body)
        assert r.status_code == 422 and error_of(r)["param"] == param, (body, r.text)
    assert "attn" in error_of(create(hyperparameters={"lora_target_modules": ["attn"]}))["message"]
    both = create(hyperparameters={}, method={"type": "supervised"})
    assert both.status_code == 422 and "not both" in error_of(both)["message"]
    for targets in ("all-linear", ["q_proj", "v_proj", "o_proj", "down_proj"], ["self_attn.k_proj", "lm_head"],
                    ["model.layers.0.mlp.up_proj"]):
        r = create(hyperparameters={"lora_target_modules": targets})
        assert r.status_code == 200, (targets, r.text)
    r = client.post(URL, headers=bob.headers, json={"model": BASE, "training_file": f})
    assert r.status_code == 404 and error_of(r)["param"] == "training_file"
    r = create(model="gpt-17")
    assert r.status_code == 404 and error_of(r)["param"] == "model"


def test_checkpoints_page_latest_step_first(client, app, alice, bob, upload):
    from models.db import session_scope
    from models.registry import Checkpoint

    job = client.post(URL, headers=alice.headers, json={"model": BASE,
                                                        "training_file": upload(alice, ALPACA_LINE)["id"]}).json()
    with session_scope(app.state.session_factory) as s:
        for step in (10, 20, 30):
            s.add(Checkpoint(job_id=job["id"], owner_id=alice.id, step_number=step, path=f"/tmp/ckpt-{step}",
                             model_name=f"ft:{BASE}:x:{job['id']}:ckpt-step-{step}", metrics={"loss": 1.0 / step}))
    url = f"{URL}/{job['id']}/checkpoints"
    page = client.get(url, headers=alice.headers, params={"limit": 2}).json()
    ListRead[CheckpointRead].model_validate(page)
    assert [FineTuningJobCheckpoint.model_validate(c).step_number for c in page["data"]] == [30, 20]
    assert page["has_more"] is True
    rest = client.get(url, headers=alice.headers, params={"after": page["last_id"]}).json()
    assert [c["step_number"] for c in rest["data"]] == [10] and rest["has_more"] is False
    r = client.get(url, headers=bob.headers)
    assert r.status_code == 404 and error_of(r)["param"] == "fine_tuning_job_id"
