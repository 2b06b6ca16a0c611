"""``job_resources``: the base model a job row loads, its shape, and the memory the dispatcher reserves."""
from __future__ import annotations

import pytest

from contracts.base_models import BUILTIN_MODELS, DEFAULT_BASE_MODEL
from contracts.memory_estimate import FALLBACK_BYTES, GIB, ModelShape, estimate_job_memory
from models.crud.jobs import create_job
from models.crud.resources import job_resources
from models.job import JobKind
from models.registry import Adapter, BaseModelEntry, Checkpoint

ADAPTER = f"ft:{DEFAULT_BASE_MODEL}:demo:ftjob-1"
BIG = "llama-7b-local"
BIG_SHAPE = ModelShape.from_hf_config({"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
                                       "num_attention_heads": 32, "vocab_size": 32000})
BUILTIN_SHAPE = BUILTIN_MODELS[DEFAULT_BASE_MODEL].shape
HP = {"hyperparameters": {"micro_batch_size": 2, "batch_size": 8, "cutoff_len": 512, "lora_r": 16}}


@pytest.fixture
def adapter(session, alice) -> Adapter:
    """alice's adapter on the built-in model, with a checkpoint; and a registered 7B model with a shape."""
    job = create_job(session=session, owner_id=alice.id, kind=JobKind.fine_tuning, params=HP, model=DEFAULT_BASE_MODEL)
    row = Adapter(owner_id=alice.id, name=ADAPTER, base_model=DEFAULT_BASE_MODEL, job_id=job.id, path="/a/final")
    session.add_all([row, Checkpoint(job_id=job.id, owner_id=alice.id, step_number=2,
                                     model_name=f"{ADAPTER}:ckpt-step-2", path="/a/ckpt-2"),
                     BaseModelEntry(name=BIG, source="/models/llama-7b", shape=BIG_SHAPE.model_dump())])
    session.flush()
    return row


def job(session, owner, kind: JobKind, params: dict, model: str | None):
    return create_job(session=session, owner_id=owner.id, kind=kind, params=params, model=model)


def test_a_fine_tuning_job_on_the_builtin_model(session, alice):
    row = job(session, alice, JobKind.fine_tuning, HP, DEFAULT_BASE_MODEL)
    want = estimate_job_memory("fine_tuning", HP, BUILTIN_SHAPE).bytes
    assert job_resources(session, row) == {"memory_bytes": want, "devices": 1, "base_model": DEFAULT_BASE_MODEL}
    assert 1 * GIB < want < 4 * GIB


def test_a_registered_model_uses_its_stored_shape(session, alice, adapter):
    res = job_resources(session, job(session, alice, JobKind.fine_tuning, HP, BIG))
    assert res["base_model"] == BIG
    assert res["memory_bytes"] == estimate_job_memory("fine_tuning", HP, BIG_SHAPE).bytes > 14 * GIB


def test_a_registered_model_without_a_shape_gets_the_kinds_fallback(session, alice):
    session.add(BaseModelEntry(name="old-model", source="/models/old"))  # registered before shapes were stored
    session.flush()
    res = job_resources(session, job(session, alice, JobKind.fine_tuning, HP, "old-model"))
    assert res == {"memory_bytes": FALLBACK_BYTES["fine_tuning"], "devices": 1, "base_model": "old-model"}


def test_a_registered_builtin_source_uses_the_builtin_shape(session, alice):
    session.add(BaseModelEntry(name="smol", source=f"builtin:{DEFAULT_BASE_MODEL}"))
    session.flush()
    res = job_resources(session, job(session, alice, JobKind.fine_tuning, HP, "smol"))
    assert res["memory_bytes"] == estimate_job_memory("fine_tuning", HP, BUILTIN_SHAPE).bytes


@pytest.mark.parametrize("name", [ADAPTER, f"{ADAPTER}:ckpt-step-2"])
def test_an_adapter_or_checkpoint_resolves_to_its_base_model(session, alice, adapter, name):
    """A batch of one model stores that model's name in ``job.model``; it runs on the adapter's base."""
    params = {"batch_size": 8, "precision": "auto"}
    res = job_resources(session, job(session, alice, JobKind.batch, params, name))
    assert res["base_model"] == DEFAULT_BASE_MODEL
    assert res["memory_bytes"] == estimate_job_memory("batch", params, BUILTIN_SHAPE).bytes


def test_several_models_listed_or_comma_separated(session, alice, adapter):
    listed = job(session, alice, JobKind.eval, {"models": ["ft:gone", ADAPTER], "batch_size": 4}, None)
    assert job_resources(session, listed)["base_model"] == DEFAULT_BASE_MODEL
    joined = job(session, alice, JobKind.batch, {}, f"ft:gone, {ADAPTER}")
    assert job_resources(session, joined)["base_model"] == DEFAULT_BASE_MODEL


def test_the_stored_base_model_of_a_batch_or_eval_wins(session, alice, adapter):
    params = {"base_model": BIG, "models": [ADAPTER], "batch_size": 16, "sampling": {"max_new_tokens": 64}}
    res = job_resources(session, job(session, alice, JobKind.eval, params, BIG))
    assert res["base_model"] == BIG
    assert res["memory_bytes"] == estimate_job_memory("eval", params, BIG_SHAPE).bytes


def test_other_users_adapters_do_not_resolve(session, alice, bob, adapter):
    res = job_resources(session, job(session, bob, JobKind.batch, {"batch_size": 8}, ADAPTER))
    assert res == {"memory_bytes": FALLBACK_BYTES["batch"], "devices": 1, "base_model": None}


def test_generation_needs_a_device_only_with_a_local_teacher(session, alice, adapter):
    remote = {"config": {"teacher": {"model": "gpt-4o-mini"}}}
    assert job_resources(session, job(session, alice, JobKind.generation, remote, "gpt-4o-mini")) == {
        "memory_bytes": 0, "devices": 1, "base_model": None}
    local = {"config": {"method": "alpaca", "teacher": {"model": ADAPTER, "local": True}}}
    res = job_resources(session, job(session, alice, JobKind.generation, local, ADAPTER))
    assert res["base_model"] == DEFAULT_BASE_MODEL
    assert res["memory_bytes"] == estimate_job_memory("generation", local, BUILTIN_SHAPE).bytes > 0


def test_export_and_preflight(session, alice, adapter):
    export = job_resources(session, job(session, alice, JobKind.export, {"adapter_id": adapter.id}, BIG))
    assert export["memory_bytes"] == estimate_job_memory("export", {}, BIG_SHAPE).bytes
    preflight = job_resources(session, job(session, alice, JobKind.preflight, HP, BIG))
    assert preflight == {"memory_bytes": 0, "devices": 1, "base_model": BIG}


def test_devices_come_from_the_params(session, alice):
    params = {**HP, "resources": {"devices": 2}}
    assert job_resources(session, job(session, alice, JobKind.fine_tuning, params, DEFAULT_BASE_MODEL))["devices"] == 2


def test_params_this_release_cannot_read_get_the_fallback(session, alice):
    """The dispatcher estimates every queued row: one it cannot read must not stop it."""
    params = {"hyperparameters": {"no_such_knob": 1}}
    res = job_resources(session, job(session, alice, JobKind.fine_tuning, params, DEFAULT_BASE_MODEL))
    assert res == {"memory_bytes": FALLBACK_BYTES["fine_tuning"], "devices": 1, "base_model": DEFAULT_BASE_MODEL}
