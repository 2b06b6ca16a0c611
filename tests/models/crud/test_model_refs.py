"""The one model-name resolver: base models, adapters and checkpoints, with and without an owner."""
from __future__ import annotations

import pytest

from contracts.base_models import BUILTIN_MODELS, DEFAULT_BASE_MODEL
from contracts.model_refs import ModelNotFound
from models.crud.jobs import create_job
from models.crud.model_refs import is_base_model, list_base_models, resolve_model
from models.job import JobKind
from models.registry import Adapter, BaseModelEntry, Checkpoint

ADAPTER = f"ft:{DEFAULT_BASE_MODEL}:demo:ftjob-1"


@pytest.fixture
def adapter(session, alice) -> Adapter:
    job = create_job(session=session, owner_id=alice.id, kind=JobKind.fine_tuning,
                     params={"hyperparameters": {"prompt_template": "chatml"}}, model=DEFAULT_BASE_MODEL)
    row = Adapter(owner_id=alice.id, name=ADAPTER, base_model=DEFAULT_BASE_MODEL, job_id=job.id, path="/a/final",
                  config={"prompt_template": "chatml"})
    session.add_all([row, Checkpoint(job_id=job.id, owner_id=alice.id, step_number=2,
                                     model_name=f"{ADAPTER}:ckpt-step-2", path="/a/ckpt-2")])
    session.flush()
    return row


def test_builtin_and_registered_base_models(session):
    session.add(BaseModelEntry(name="local-llama", source="/models/llama", description=""))
    session.flush()
    assert is_base_model(session=session, name=DEFAULT_BASE_MODEL)
    assert is_base_model(session=session, name="local-llama")
    assert not is_base_model(session=session, name=ADAPTER)
    listing = list_base_models(session=session)
    assert [m.name for m in listing] == [*BUILTIN_MODELS, "local-llama"]
    assert listing[-1].description == "/models/llama" and listing[-1].created_at is not None
    ref = resolve_model(session=session, name="local-llama", owner_id=None)
    assert (ref.kind, ref.base_model, ref.target) == ("base", "local-llama", ("local-llama", None, None))


def test_adapter_for_its_owner_and_for_the_server(session, adapter, alice):
    for owner in (alice.id, None):
        ref = resolve_model(session=session, name=ADAPTER, owner_id=owner)
        assert (ref.kind, ref.base_model, ref.adapter_path, ref.prompt_template) == (
            "adapter", DEFAULT_BASE_MODEL, "/a/final", "chatml")


def test_checkpoint_is_prompted_like_its_job_trained_it(session, adapter, alice):
    ref = resolve_model(session=session, name=f"{ADAPTER}:ckpt-step-2", owner_id=alice.id)
    assert (ref.kind, ref.base_model, ref.adapter_path, ref.prompt_template) == (
        "checkpoint", DEFAULT_BASE_MODEL, "/a/ckpt-2", "chatml")


def test_other_users_models_are_not_found(session, adapter, bob):
    for name in (ADAPTER, f"{ADAPTER}:ckpt-step-2"):
        with pytest.raises(ModelNotFound):
            resolve_model(session=session, name=name, owner_id=bob.id)


def test_unknown_names_say_what_is_missing(session, adapter, alice):
    with pytest.raises(ModelNotFound) as exc:
        resolve_model(session=session, name="ft:nope", owner_id=alice.id)
    assert exc.value.message == "The model 'ft:nope' does not exist"
    with pytest.raises(ModelNotFound) as exc:
        resolve_model(session=session, name=f"{ADAPTER}:ckpt-step-9", owner_id=alice.id)
    assert exc.value.message == f"The checkpoint '{ADAPTER}:ckpt-step-9' does not exist"


def test_a_checkpoint_needs_no_final_adapter(session, adapter, alice):
    """Checkpoints of a job that never produced its adapter (cancelled, failed) stay usable."""
    session.delete(adapter)
    session.flush()
    ref = resolve_model(session=session, name=f"{ADAPTER}:ckpt-step-2", owner_id=alice.id)
    assert (ref.kind, ref.adapter_path) == ("checkpoint", "/a/ckpt-2")


def test_relative_adapter_paths_resolve_on_the_reading_host(session, adapter, alice, tmp_path):
    """Rows hold paths relative to the artifact root; each host resolves them against its own mount."""
    job = create_job(session=session, owner_id=alice.id, kind=JobKind.fine_tuning, params={},
                     model=DEFAULT_BASE_MODEL)
    name = f"ft:{DEFAULT_BASE_MODEL}:rel:{job.id}"
    session.add_all([Adapter(owner_id=alice.id, name=name, base_model=DEFAULT_BASE_MODEL, job_id=job.id,
                             path=f"jobs/{job.id}/adapter"),
                     Checkpoint(job_id=job.id, owner_id=alice.id, step_number=2, model_name=f"{name}:ckpt-step-2",
                                path=f"jobs/{job.id}/checkpoint-2")])
    session.flush()
    mount = tmp_path / "mnt" / "artifacts"
    ref = resolve_model(session=session, name=name, owner_id=alice.id, artifacts_dir=mount)
    assert ref.adapter_path == str((mount / "jobs" / job.id / "adapter").resolve())
    assert ref.target.adapter_dir == mount.resolve() / "jobs" / job.id / "adapter"
    ckpt = resolve_model(session=session, name=f"{name}:ckpt-step-2", owner_id=None, artifacts_dir=mount)
    assert ckpt.adapter_path == str((mount / "jobs" / job.id / "checkpoint-2").resolve())
    # An old row's absolute path is used as it is; without a mount the stored form comes back.
    assert resolve_model(session=session, name=ADAPTER, owner_id=None, artifacts_dir=mount).adapter_path == "/a/final"
    assert resolve_model(session=session, name=name, owner_id=None).adapter_path == f"jobs/{job.id}/adapter"


def test_training_start_by_adapter_name_id_or_checkpoint_for_its_owner_only(session, adapter, alice):
    from pathlib import Path

    from models.crud.model_refs import resolve_training_start

    for name in (ADAPTER, adapter.id):
        start = resolve_training_start(session=session, name=name, owner_id=alice.id)
        assert (start.ref.kind, start.ref.name, start.ref.adapter_path) == ("adapter", ADAPTER, "/a/final")
        assert start.hyperparameters == {"prompt_template": "chatml"}  # the adapter's own run
    ckpt = resolve_training_start(session=session, name=f"{ADAPTER}:ckpt-step-2", owner_id=alice.id,
                                  artifacts_dir=Path("/store"))
    assert (ckpt.ref.kind, ckpt.ref.adapter_path, ckpt.hyperparameters) == (
        "checkpoint", "/a/ckpt-2", {"prompt_template": "chatml"})  # its job's hyperparameters
    base = resolve_training_start(session=session, name=DEFAULT_BASE_MODEL, owner_id=alice.id)
    assert (base.ref.kind, base.hyperparameters) == ("base", {})
    for name in (adapter.id, ADAPTER, f"{ADAPTER}:ckpt-step-2"):
        with pytest.raises(ModelNotFound):
            resolve_training_start(session=session, name=name, owner_id="someone-else")
    with pytest.raises(ModelNotFound):
        resolve_training_start(session=session, name="adapter-missing", owner_id=alice.id)
