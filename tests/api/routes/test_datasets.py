"""``/v1/datasets``: owned look-ups, rows paged by index, filters of rejected rows."""
from __future__ import annotations

import json

import pytest


@pytest.fixture
def dataset(app, alice):
    """A dataset of alice's with 5 kept rows and 3 rejected ones (two by 'rouge'), as a generation job leaves it."""
    from models.db import session_scope
    from models.file import Dataset
    from models.storage import ArtifactStore

    store = ArtifactStore(app.state.settings.artifacts_dir)
    kept = [{"instruction": f"task {i}", "input": "", "output": "ok", "provenance": {"step": i}} for i in range(5)]
    rejected = [{"instruction": f"bad {i}", "filter": f} for i, f in enumerate(["rouge", "length", "rouge"])]
    store.write_bytes("datasets/d/rows.jsonl", "".join(json.dumps(r) + "\n" for r in kept).encode())
    store.write_bytes("datasets/d/rejected.jsonl", "".join(json.dumps(r) + "\n" for r in rejected).encode())
    with session_scope(app.state.session_factory) as s:
        ds = Dataset(owner_id=alice.id, name="gen", n_rows=5, n_rejected=3, rows_path="datasets/d/rows.jsonl",
                     rejected_path="datasets/d/rejected.jsonl", stats={"rejected_by_filter": {"rouge": 2, "length": 1}})
        s.add(ds)
        s.flush()
        return ds.id


def test_rows_page_by_index(client, alice, dataset):
    first = client.get(f"/v1/datasets/{dataset}/rows?limit=2", headers=alice.headers).json()
    assert [r["index"] for r in first["data"]] == [0, 1] and first["has_more"] and first["next_after"] == 1
    rest = client.get(f"/v1/datasets/{dataset}/rows?after=1&limit=10", headers=alice.headers).json()
    assert [r["index"] for r in rest["data"]] == [2, 3, 4] and not rest["has_more"]
    assert rest["data"][0]["provenance"] == {"step": 2} and rest["data"][0]["verdict"] == "kept"


def test_rejected_rows_by_filter(client, alice, dataset):
    rouge = client.get(f"/v1/datasets/{dataset}/rows?filter=rouge", headers=alice.headers).json()["data"]
    assert [(r["index"], r["verdict"]) for r in rouge] == [(0, "rejected"), (2, "rejected")]
    r = client.get(f"/v1/datasets/{dataset}/rows?filter=rouge&verdict=kept", headers=alice.headers)
    assert r.status_code == 400 and r.json()["error"]["param"] == "filter"
    r = client.get(f"/v1/datasets/{dataset}/rows?after=-1", headers=alice.headers)
    assert r.status_code == 422 and r.json()["error"]["param"] == "after"


def test_datasets_are_their_owners(client, alice, bob, dataset):
    listed = client.get("/v1/datasets", headers=alice.headers).json()
    assert [d["id"] for d in listed["data"]] == [dataset] and listed["data"][0]["rejected_by_filter"]["rouge"] == 2
    assert client.get("/v1/datasets", headers=bob.headers).json()["data"] == []
    for path in (f"/v1/datasets/{dataset}", f"/v1/datasets/{dataset}/rows"):
        r = client.get(path, headers=bob.headers)
        assert r.status_code == 404 and r.json()["error"]["param"] == "dataset_id"


def test_rows_no_longer_stored_are_a_410(client, app, alice, dataset):
    (app.state.settings.artifacts_dir / "datasets/d/rows.jsonl").unlink()
    r = client.get(f"/v1/datasets/{dataset}/rows", headers=alice.headers)
    assert r.status_code == 410 and r.json()["error"]["code"] == "rows_missing"
