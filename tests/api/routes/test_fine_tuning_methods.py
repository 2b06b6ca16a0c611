"""``method`` beyond supervised and ``model`` beyond base models on ``/v1/fine_tuning/jobs``: DPO jobs in
OpenAI's shape (checked with the SDK's types), preference files validated with line numbers at upload and
at job create, ``reinforcement`` refused naming ``method.type``, and continued training from one's own
adapter (name or id) or checkpoint, with 404/400 naming ``model`` otherwise."""
from __future__ import annotations

import json

from openai.types.fine_tuning import FineTuningJob

from tests.api.routes.job_kit import ALPACA_LINE, BASE, error_of

URL = "/v1/fine_tuning/jobs"
PAIR = {"input": {"messages": [{"role": "user", "content": "Capital of France?"}]},
        "preferred_output": [{"role": "assistant", "content": "Paris."}],
        "non_preferred_output": [{"role": "assistant", "content": "Lyon."}]}
ALPACA_PAIR = {"instruction": "Name a colour.", "chosen": "Blue.", "rejected": "Seven."}
DPO = {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "batch_size": 4, "micro_batch_size": 2,
                                                  "learning_rate_multiplier": 0.5, "n_epochs": 2}}}


def lines(*rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_a_dpo_job_in_openai_shape(client, alice, upload):
    f = upload(alice, lines(PAIR, ALPACA_PAIR))
    assert f["object"] == "file"
    r = client.post(URL, headers=alice.headers, json={"model": BASE, "training_file": f["id"], "method": DPO})
    assert r.status_code == 200, r.text
    job = FineTuningJob.model_validate(r.json())
    assert job.method.type == "dpo" and job.method.dpo.hyperparameters.beta == 0.2
    assert job.method.dpo.hyperparameters.n_epochs == 2 and job.method.dpo.hyperparameters.batch_size == 4
    assert job.method.dpo.hyperparameters.learning_rate_multiplier == 0.5 and job.method.supervised is None
    assert r.json()["hyperparameters"]["beta"] == 0.2 and r.json()["hyperparameters"]["learning_rate"] == 1.5e-4
    r = client.post(URL, headers=alice.headers, json={"model": BASE, "training_file": f["id"], "method": DPO,
                                                      "validation_file": f["id"]})
    assert r.status_code == 200 and r.json()["validation_file"] == f["id"]
    sft = upload(alice, ALPACA_LINE)["id"]
    r = client.post(URL, headers=alice.headers, json={"model": BASE, "training_file": f["id"], "method": DPO,
                                                      "validation_file": sft})
    assert r.status_code == 400 and error_of(r)["param"] == "validation_file" and error_of(r)["lines"][0]["line"] == 1
    bad = client.post(URL, headers=alice.headers, json={"model": BASE, "training_file": f["id"],
                                                        "method": {"type": "dpo", "dpo": {"hyperparameters": {
                                                            "beta": -1}}}})
    assert bad.status_code == 422 and error_of(bad)["param"] == "method.dpo.hyperparameters.beta"


def test_malformed_dpo_lines_are_refused_with_their_numbers(client, alice, upload):
    broken = lines(PAIR, {**PAIR, "preferred_output": "Paris."}, ALPACA_PAIR, {**ALPACA_PAIR, "rejected": None})
    r = client.post("/v1/files", headers=alice.headers, data={"purpose": "fine-tune"},
                    files={"file": ("dpo.jsonl", broken.encode())})
    assert r.status_code == 400, r.text
    err = error_of(r)
    assert err["param"] == "file" and [(e["line"], e["param"]) for e in err["lines"]] == [
        (2, "preferred_output"), (4, "rejected")]
    assert "line 2:" in err["message"] and "line 4:" in err["message"]
    # at job create: an SFT file given to a DPO job is answered with its lines' errors as pairs
    sft = upload(alice, ALPACA_LINE + '{"instruction": "b", "output": "c"}\n')
    r = client.post(URL, headers=alice.headers, json={"model": BASE, "training_file": sft["id"], "method": DPO})
    assert r.status_code == 400 and error_of(r)["param"] == "training_file"
    assert [e["line"] for e in error_of(r)["lines"]] == [1, 2] and "line 1:" in error_of(r)["message"]
    pairs = upload(alice, lines(ALPACA_PAIR))
    r = client.post(URL, headers=alice.headers, json={"model": BASE, "training_file": pairs["id"]})
    assert r.status_code == 400 and error_of(r)["param"] == "training_file" and "dpo" in error_of(r)["message"]


def test_reinforcement_is_a_400_naming_method_type(client, alice, upload):
    f = upload(alice, ALPACA_LINE)
    r = client.post(URL, headers=alice.headers, json={"model": BASE, "training_file": f["id"],
                                                      "method": {"type": "reinforcement"}})
    assert r.status_code == 400 and error_of(r)["param"] == "method.type"
    assert "reinforcement" in error_of(r)["message"]
    r = client.post(URL, headers=alice.headers, json={"model": BASE, "training_file": f["id"],
                                                      "method": {"type": "ppo"}})
    assert r.status_code == 422 and error_of(r)["param"] == "method.type"


def _adapters(app, alice, bob) -> dict:
    from models.crud import jobs as job_crud
    from models.db import session_scope
    from models.job import JobKind
    from models.registry import Adapter, Checkpoint

    hp = {"lora_r": 16, "lora_alpha": 32, "lora_target_modules": ["q_proj", "k_proj", "v_proj"],
          "prompt_template": "alpaca_short"}
    with session_scope(app.state.session_factory) as s:
        job = job_crud.create_job(session=s, owner_id=alice.id, kind=JobKind.fine_tuning, model=BASE,
                                  params={"hyperparameters": hp})
        mine = Adapter(owner_id=alice.id, name=f"ft:{BASE}:mine:{job.id}", base_model=BASE, job_id=job.id,
                       path=f"jobs/{job.id}/adapter", config=hp)
        theirs = Adapter(owner_id=bob.id, name=f"ft:{BASE}:theirs:ftjob-x", base_model=BASE, path="jobs/x/adapter",
                         config=hp)
        s.add_all([mine, theirs])
        s.add(Checkpoint(job_id=job.id, owner_id=alice.id, step_number=3, model_name=f"{mine.name}:ckpt-step-3",
                         path=f"jobs/{job.id}/checkpoints/step-3"))
        s.flush()
        return {"mine": mine.name, "mine_id": mine.id, "theirs": theirs.name, "theirs_id": theirs.id}


def test_continued_training_from_ones_own_adapter_or_checkpoint(client, app, alice, bob, upload):
    names = _adapters(app, alice, bob)
    f = upload(alice, ALPACA_LINE)["id"]
    dpo_file = upload(alice, lines(PAIR))["id"]

    def create(model, training_file=f, **body):
        return client.post(URL, headers=alice.headers, json={"model": model, "training_file": training_file, **body})

    for model in (names["mine"], names["mine_id"], f"{names['mine']}:ckpt-step-3"):
        r = create(model)
        assert r.status_code == 200, (model, r.text)
        job = r.json()
        assert job["model"] == BASE  # the job runs on the adapter's base model
        assert (job["hyperparameters"]["lora_r"], job["hyperparameters"]["prompt_template"]) == (16, "alpaca_short")
        assert job["hyperparameters"]["lora_target_modules"] == ["q_proj", "k_proj", "v_proj"]
    r = create(names["mine"], dpo_file, method=DPO)  # DPO after SFT
    assert r.status_code == 200 and r.json()["method"]["type"] == "dpo"
    from models.db import session_scope
    from models.job import Job

    with session_scope(app.state.session_factory) as s:
        assert s.get(Job, r.json()["id"]).params["start_from"] == names["mine"]
    for model in (names["theirs"], names["theirs_id"], "ft:nothing:here:ftjob-0", f"{names['mine']}:ckpt-step-9",
                  "adapter-unknown"):
        r = create(model)
        assert r.status_code == 404 and error_of(r)["param"] == "model", (model, r.text)
    r = create(f"{names['mine']}:ckpt-step-three")
    assert r.status_code == 400 and error_of(r)["param"] == "model"
    r = create(names["mine"], method={"type": "supervised", "supervised": {"hyperparameters": {"lora_r": 8}}})
    assert r.status_code == 400 and error_of(r)["param"] == "method.supervised.hyperparameters.lora_r"
    r = create(names["mine"], hyperparameters={"lora_r": 16, "n_epochs": 1})
    assert r.status_code == 200 and r.json()["hyperparameters"]["n_epochs"] == 1
    for model in (BASE, names["mine"]):  # a folder on the worker's host is never taken from a request
        r = create(model, hyperparameters={"init_adapter": "/etc"})
        assert r.status_code == 400 and error_of(r)["param"] == "hyperparameters.init_adapter", r.text
