"""The export handler through ``run_job`` (no Celery) on the real database, with a tiny LLaMA registered as a
base model: ``format: gguf`` registers the .gguf as a file of the owner (chat template from the adapter's
training template), the default still writes the merged HF checkpoint, a foreign adapter fails the job."""
from __future__ import annotations

import secrets

import pytest

from models.crud import jobs as job_crud
from models.crud.users import create_user
from models.db import session_scope
from models.file import File
from models.job import Job, JobKind
from models.registry import Adapter, BaseModelEntry
from models.settings import Settings
from models.storage import ArtifactStore
from tests.worker.conftest import TEST_WORKER, admit
from tests.worker.ml.decoding.engine_helpers import make_random_adapter
from worker.handlers.export import run_export_job
from worker.runner import run_job


@pytest.fixture
def settings(tmp_path):
    return Settings(LORAFLEET_DATA_DIR=str(tmp_path), LORAFLEET_LEASE_SECONDS=3)


@pytest.fixture
def owned_adapter(db_session_factory, tiny_llama_dir, tmp_path):
    """(owner id, adapter id) of a random LoRA trained -- as its folder records -- with the 'chat' template."""
    folder = make_random_adapter(tiny_llama_dir, tmp_path / "adapter", seed=3, prompt_template="chat")
    base = f"tiny-{secrets.token_hex(3)}"
    with session_scope(db_session_factory) as s:
        user, _ = create_user(session=s, name=f"x-{secrets.token_hex(4)}")
        s.add(BaseModelEntry(name=base, source=str(tiny_llama_dir)))
        row = Adapter(owner_id=user.id, name=f"ft:{base}:t:manual", base_model=base, path=str(folder))
        s.add(row)
        s.flush()
        return user.id, row.id


def run_export(factory, settings, owner_id: str, params: dict) -> Job:
    with session_scope(factory) as s:
        job_id = job_crud.create_job(session=s, owner_id=owner_id, kind=JobKind.export, params=params).id
    admit(factory, job_id)
    run_job(session_factory=factory, settings=settings, job_id=job_id, handler=run_export_job, worker_id=TEST_WORKER)
    with factory() as s:
        return s.get(Job, job_id)


def test_gguf_export_registers_the_file(db_session_factory, settings, owned_adapter, tiny_llama_dir):
    import gguf
    from transformers import AutoTokenizer

    owner, adapter_id = owned_adapter
    job = run_export(db_session_factory, settings, owner, {"adapter_id": adapter_id, "format": "gguf", "dtype": "f32"})
    assert job.status == "succeeded", job.error
    result = job.result
    assert result["format"] == "gguf" and result["dtype"] == "f32" and result["prompt_template"] == "chat"
    with db_session_factory() as s:
        f = s.get(File, result["file_id"])
        assert f.owner_id == owner and f.purpose == "export" and f.filename == result["filename"]
        path = ArtifactStore(settings.artifacts_dir).path(f.storage_path)
    assert path.stat().st_size == f.bytes == result["bytes"]
    reader = gguf.GGUFReader(path)
    base_template = AutoTokenizer.from_pretrained(tiny_llama_dir).chat_template
    assert reader.fields["tokenizer.chat_template"].contents() == base_template
    assert not list((settings.artifacts_dir / "jobs" / job.id).glob("*.gguf"))  # the copy in files/ is the one


def test_default_export_is_the_merged_hf_checkpoint(db_session_factory, settings, owned_adapter):
    owner, adapter_id = owned_adapter
    job = run_export(db_session_factory, settings, owner, {"adapter_id": adapter_id})
    assert job.status == "succeeded", job.error
    merged = ArtifactStore(settings.artifacts_dir).resolve(job.result["merged_model_dir"])
    assert job.result["format"] == "hf" and (merged / "config.json").is_file() and any(merged.glob("*.safetensors"))


def test_someone_elses_adapter_fails_the_job(db_session_factory, settings, owned_adapter):
    _owner, adapter_id = owned_adapter
    with session_scope(db_session_factory) as s:
        stranger, _ = create_user(session=s, name=f"y-{secrets.token_hex(4)}")
        stranger_id = stranger.id
    job = run_export(db_session_factory, settings, stranger_id, {"adapter_id": adapter_id, "format": "gguf"})
    assert job.status == "failed" and job.error["code"] == "adapter_not_found"
