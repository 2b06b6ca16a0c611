"""``/openapi.json`` is true to the API: every operation documents a schema for every status it answers,
in lorafleet's error shape; request bodies are declared; media types and cursors are described."""
from __future__ import annotations

import json

import pytest

ERROR_REF = "#/components/schemas/ErrorResponse"
BODY_METHODS = {"post", "put", "patch"}


@pytest.fixture(scope="module")
def spec() -> dict:
    """The schema as served, from an app that is never started (no database needed)."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from models.settings import Settings

    app = create_app(Settings(DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none"))
    return TestClient(app).get("/openapi.json").json()


def operations(spec: dict):
    for path, item in spec["paths"].items():
        for method, op in item.items():
            yield path, method, op


def test_every_documented_status_has_a_schema(spec):
    missing = []
    for path, method, op in operations(spec):
        assert any(s.startswith("2") for s in op["responses"]), f"{method} {path}: no success response"
        for status, response in op["responses"].items():
            content = response.get("content", {})
            if not content or not all(media.get("schema") for media in content.values()):
                missing.append(f"{method.upper()} {path} {status}")
    assert not missing, "responses without a schema:\n" + "\n".join(missing)


def test_errors_are_documented_in_the_shape_sent(spec):
    assert "HTTPValidationError" not in json.dumps(spec)
    assert {"HTTPValidationError", "ValidationError"}.isdisjoint(spec["components"]["schemas"])
    error = spec["components"]["schemas"]["ErrorBody"]
    assert {"message", "type", "param", "code"} <= set(error["properties"])
    for path, method, op in operations(spec):
        for status, response in op["responses"].items():
            if status[0] in "45":
                assert response["content"] == {"application/json": {"schema": {"$ref": ERROR_REF}}}, (path, status)
        if path.startswith("/v1/"):
            assert op["security"] == [{"bearerAuth": []}]
            assert op["responses"]["401"]["headers"]["WWW-Authenticate"]["required"] is True
        params = {p["in"] for p in op.get("parameters", [])}
        if "path" in params or "requestBody" in op:
            assert "404" in op["responses"], (method, path)
        if "requestBody" in op or params:
            assert "400" in op["responses"], (method, path)


def test_statuses_routes_raise_themselves_are_documented(spec):
    paths = spec["paths"]
    assert {"403", "409"} <= set(paths["/v1/users"]["post"]["responses"])
    assert "403" in paths["/v1/users"]["get"]["responses"]
    assert "413" in paths["/v1/files"]["post"]["responses"]
    assert "410" in paths["/v1/datasets/{dataset_id}/rows"]["get"]["responses"]
    assert "410" in paths["/v1/adapters/{adapter_id}/download"]["get"]["responses"]
    for path in ("/v1/chat/completions", "/v1/completions"):
        assert {"400", "404", "502", "503"} <= set(paths[path]["post"]["responses"])


def test_request_bodies_are_declared(spec):
    """Every POST to a collection takes a body; the ones routes read themselves are declared too."""
    for path, method, op in operations(spec):
        if method in BODY_METHODS and "{" not in path:
            assert "requestBody" in op, f"{method.upper()} {path} declares no request body"
    upload = spec["paths"]["/v1/files"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert upload["required"] == ["file", "purpose"] and upload["properties"]["file"]["format"] == "binary"
    for path, model in (("/v1/chat/completions", "ChatCompletionRequest"), ("/v1/completions", "CompletionRequest")):
        body = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{model}"}
        declared = spec["components"]["schemas"][model]
        assert declared["additionalProperties"] is True  # OpenAI's other fields reach the server untouched
    chat = spec["components"]["schemas"]["ChatCompletionRequest"]
    assert chat["required"] == ["model", "messages"] and chat["properties"]["messages"]["minItems"] == 1


def test_every_ref_resolves(spec):
    schemas = spec["components"]["schemas"]
    refs = {part.split('"')[0] for part in json.dumps(spec).split('"$ref": "#/components/schemas/')[1:]}
    assert refs <= set(schemas), refs - set(schemas)


def test_media_types_are_the_real_ones(spec):
    paths = spec["paths"]
    content = paths["/v1/files/{file_id}/content"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["application/octet-stream"]
    assert set(paths["/v1/chat/completions"]["post"]["responses"]["200"]["content"]) == {
        "application/json", "text/event-stream"}
    stream = paths["/v1/jobs/{job_id}/events/stream"]["get"]["responses"]["200"]["content"]
    assert list(stream) == ["text/event-stream"] and stream["text/event-stream"]["schema"]["type"] == "object"


@pytest.mark.parametrize("path", ["/v1/files", "/v1/datasets", "/v1/datasets/{dataset_id}/rows"])
def test_cursors_are_described(spec, path):
    (after,) = [p for p in spec["paths"][path]["get"]["parameters"] if p["name"] == "after"]
    assert after.get("description")
