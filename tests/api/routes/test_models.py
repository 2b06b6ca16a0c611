"""``/v1/models``: the base models and the caller's own adapters, OpenAI-shaped."""
from __future__ import annotations

from contracts.base_models import BUILTIN_MODELS


def test_base_models_are_listed_and_retrievable(client, alice):
    page = client.get("/v1/models", headers=alice.headers).json()
    assert page["object"] == "list" and set(BUILTIN_MODELS) <= {m["id"] for m in page["data"]}
    name = next(iter(BUILTIN_MODELS))
    m = client.get(f"/v1/models/{name}", headers=alice.headers).json()
    assert (m["id"], m["object"], m["kind"]) == (name, "model", "base")


def test_unknown_models_are_404_naming_the_param(client, alice):
    r = client.get("/v1/models/ft:nothing:here", headers=alice.headers)
    assert r.status_code == 404 and r.json()["error"]["param"] == "model"
    assert client.get("/v1/models").status_code == 401
