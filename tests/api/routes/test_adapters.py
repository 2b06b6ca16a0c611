"""``/v1/adapters``: list, retrieve (by id or model name), download, export (an export job), delete."""
from __future__ import annotations

import io
import tarfile

from api.schemas.adapters import AdapterRead
from api.schemas.common import DeletedRead, ListRead
from api.schemas.jobs import JobRead
from tests.api.routes.job_kit import BASE, error_of

URL = "/v1/adapters"


def test_an_adapter_from_listing_to_deletion(client, app, alice, bob, tmp_path):
    from models.db import session_scope
    from models.registry import Adapter

    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    with session_scope(app.state.session_factory) as s:
        row = Adapter(owner_id=alice.id, name=f"ft:{BASE}:demo:ftjob-1", base_model=BASE, path=str(folder),
                      config={"lora_r": 8}, metrics={"loss": 1.0})
        s.add(row)
        s.flush()
        adapter_id, name = row.id, row.name
    listed = ListRead[AdapterRead].model_validate(client.get(URL, headers=alice.headers).json())
    assert [a.id for a in listed.data] == [adapter_id]
    by_name = client.get(f"{URL}/{name}", headers=alice.headers)
    assert by_name.status_code == 200 and AdapterRead.model_validate(by_name.json()).config == {"lora_r": 8}
    r = client.get(f"{URL}/{adapter_id}", headers=bob.headers)
    assert r.status_code == 404 and error_of(r)["param"] == "adapter_id"
    tar = client.get(f"{URL}/{adapter_id}/download", headers=alice.headers)
    assert tar.status_code == 200 and tar.headers["content-type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(tar.content)) as archive:
        assert f"{adapter_id}/adapter_config.json" in archive.getnames()
    export = client.post(f"{URL}/{adapter_id}/export", headers=alice.headers)
    job = JobRead.model_validate(export.json())
    assert export.status_code == 200 and job.object == "export.job" and job.kind == "export"
    assert client.get(f"/v1/jobs/{job.id}", headers=alice.headers).json()["object"] == "export.job"
    (folder / "adapter_config.json").unlink()
    gone = client.get(f"{URL}/{adapter_id}/download", headers=alice.headers)
    assert gone.status_code == 410 and error_of(gone)["code"] == "adapter_missing"
    deleted = client.delete(f"{URL}/{adapter_id}", headers=alice.headers)
    assert DeletedRead.model_validate(deleted.json()).deleted and deleted.json()["object"] == "adapter"
    assert client.get(f"{URL}/{adapter_id}", headers=alice.headers).status_code == 404


def test_an_adapter_stored_relative_to_the_artifact_root(client, app, alice, settings):
    """New rows hold the folder relative to the store: the API resolves it on its own mount."""
    from models.db import session_scope
    from models.registry import Adapter

    folder = settings.artifacts_dir / "jobs" / "ftjob-2" / "adapter"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    with session_scope(app.state.session_factory) as s:
        row = Adapter(owner_id=alice.id, name=f"ft:{BASE}:rel:ftjob-2", base_model=BASE, path="jobs/ftjob-2/adapter")
        s.add(row)
        s.flush()
        adapter_id = row.id
    tar = client.get(f"{URL}/{adapter_id}/download", headers=alice.headers)
    with tarfile.open(fileobj=io.BytesIO(tar.content)) as archive:
        assert f"{adapter_id}/adapter_config.json" in archive.getnames()
    assert client.delete(f"{URL}/{adapter_id}", headers=alice.headers).status_code == 200
    assert not folder.exists() and settings.artifacts_dir.is_dir()


def _adapter(app, owner_id: str, tmp_path) -> str:
    from models.db import session_scope
    from models.registry import Adapter

    folder = tmp_path / "adapter"
    folder.mkdir(exist_ok=True)
    (folder / "adapter_config.json").write_text("{}")
    with session_scope(app.state.session_factory) as s:
        row = Adapter(owner_id=owner_id, name=f"ft:{BASE}:exp:ftjob-3", base_model=BASE, path=str(folder))
        s.add(row)
        s.flush()
        return row.id


def test_export_formats_and_dtypes_become_the_jobs_params(client, app, alice, tmp_path):
    from models.job import Job

    adapter_id = _adapter(app, alice.id, tmp_path)
    cases = [(None, {"format": "hf"}), ({}, {"format": "hf"}), ({"format": "hf"}, {"format": "hf"}),
             ({"format": "gguf"}, {"format": "gguf", "dtype": "f16"}),
             ({"format": "gguf", "dtype": "q8_0"}, {"format": "gguf", "dtype": "q8_0"}),
             ({"format": "gguf", "dtype": "f32"}, {"format": "gguf", "dtype": "f32"})]
    for body, params in cases:
        r = client.post(f"{URL}/{adapter_id}/export", headers=alice.headers, **({} if body is None else {"json": body}))
        assert r.status_code == 200, r.text
        job = JobRead.model_validate(r.json())
        assert job.kind == "export" and job.model == BASE
        with app.state.session_factory() as s:
            assert s.get(Job, job.id).params == {"adapter_id": adapter_id, **params}


def test_bad_export_bodies_are_400_naming_the_field(client, app, alice, bob, tmp_path):
    adapter_id = _adapter(app, alice.id, tmp_path)
    url = f"{URL}/{adapter_id}/export"
    for body, param in [({"format": "onnx"}, "format"), ({"format": "gguf", "dtype": "q4_k"}, "dtype"),
                        ({"format": "gguf", "dtype": 16}, "dtype"), ({"format": "hf", "dtype": "f16"}, "dtype"),
                        ({"format": "gguf", "quant": "q8_0"}, "quant")]:
        r = client.post(url, headers=alice.headers, json=body)
        assert r.status_code == 400 and error_of(r)["param"] == param, (body, r.text)
        assert param in error_of(r)["message"]
    for raw in (b"{not json", b"[1]"):
        r = client.post(url, headers={**alice.headers, "Content-Type": "application/json"}, content=raw)
        assert r.status_code == 400 and error_of(r)["code"] == "invalid_json"
    r = client.post(url, headers=bob.headers, json={"format": "gguf"})
    assert r.status_code == 404 and error_of(r)["param"] == "adapter_id"
    assert client.get("/v1/jobs", headers=alice.headers).json()["data"] == []
