"""Issue 15, GGUF export end to end: ``POST /v1/adapters/{id}/export {"format": "gguf"}`` over HTTP runs an
export job on a real Celery worker; its result names a file whose content (fetched with the openai SDK) is a
valid .gguf of the merged model with the adapter's training template as its chat template."""
from __future__ import annotations

import pytest

from tests.integration.adapter_rows import api, make_adapter_folders, register_adapters, user_id_of
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def adapter_folder(base_model_dir, tmp_path_factory):
    return make_adapter_folders(base_model_dir, tmp_path_factory.mktemp("export-adapters"), n=1)[0]


def wait_job(client, job_id: str, timeout: float = 900) -> dict:
    def finished():
        job = api(client, "GET", f"jobs/{job_id}").json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(finished, timeout, 1.0, f"export job {job_id}")


def test_gguf_export_job_gives_a_downloadable_gguf(openai_client, start_worker, settings, adapter_folder,
                                                   tmp_path):
    import gguf

    from worker.ml.export.chat_template import alpaca_chat_template

    client = openai_client
    [name] = register_adapters(settings, user_id_of(client), [adapter_folder])
    bad = api(client, "POST", f"adapters/{name}/export", json={"format": "gguf", "dtype": "q4_0"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "dtype"
    r = api(client, "POST", f"adapters/{name}/export", json={"format": "gguf", "dtype": "q8_0"})
    assert r.status_code == 200, r.text
    start_worker()
    job = wait_job(client, r.json()["id"])
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["format"] == "gguf" and result["dtype"] == "q8_0" and result["prompt_template"] == "alpaca"
    meta = client.files.retrieve(result["file_id"])
    assert meta.filename.endswith(".q8_0.gguf") and meta.purpose == "export" and meta.bytes == result["bytes"]
    path = tmp_path / meta.filename
    path.write_bytes(client.files.content(result["file_id"]).content)
    assert path.stat().st_size == meta.bytes
    reader = gguf.GGUFReader(path)
    assert reader.fields["general.architecture"].contents() == "llama"
    assert reader.fields["tokenizer.chat_template"].contents() == alpaca_chat_template("alpaca")
    assert reader.fields["general.file_type"].contents() == int(gguf.LlamaFileType.MOSTLY_Q8_0)
    assert {t.tensor_type.name for t in reader.tensors} == {"Q8_0", "F32"}
    assert len(reader.tensors) == 1 + 1 + 30 * 9  # token_embd, output_norm, 9 per block (tied output)
    events = api(client, "GET", f"jobs/{job['id']}/events").json()["data"]
    assert any(e["data"].get("file_id") == result["file_id"] for e in events if e.get("data"))
