"""Every failure answers lorafleet's ``{"error": {...}}`` body, with the headers HTTP asks for."""
from __future__ import annotations

import pytest

from api.errors import loc_to_param
from api.schemas.errors import ErrorResponse


def error_of(r, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    return ErrorResponse.model_validate(r.json()).error.model_dump(exclude_none=True)


@pytest.mark.parametrize("headers,code", [({}, "missing_api_key"), ({"Authorization": "Bearer nope"}, "invalid_api_key"),
                                          ({"Authorization": "Basic abc"}, "missing_api_key")])
def test_401_challenges_for_a_bearer_key(client, headers, code):
    r = client.get("/v1/me", headers=headers)
    assert error_of(r, 401)["code"] == code and r.json()["error"]["type"] == "authentication_error"
    assert r.headers["www-authenticate"] == "Bearer"


def test_405_keeps_its_allow_header(client, alice):
    r = client.put("/v1/files", headers=alice.headers)
    assert error_of(r, 405)["code"] == "method_not_allowed"
    assert set(r.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}  # both routes


def test_unknown_path_is_a_404_in_the_same_shape(client):
    assert error_of(client.get("/v1/nothing-here"), 404)["code"] == "not_found"


def test_422_names_the_param_and_every_detail(client, alice):
    err = error_of(client.get("/v1/files?limit=0", headers=alice.headers), 422)
    assert err["param"] == "limit" and err["code"] == "invalid_value"
    assert err["details"][0]["param"] == "limit" and err["message"].startswith("limit: ")


def test_an_unexpected_failure_is_a_500_in_the_same_shape(app, settings):
    from fastapi.testclient import TestClient

    @app.get("/boom")
    def boom():
        raise RuntimeError("kaput")

    with TestClient(app, raise_server_exceptions=False) as c:
        err = error_of(c.get("/boom"), 500)
    assert err == {"message": "The server failed on this request", "type": "server_error", "code": "internal_error"}


@pytest.mark.parametrize("loc,param", [
    (("body", "messages", 0, "role"), "messages.0.role"),
    (("body", "stop", "str"), "stop"),
    (("body", "stop", "list[constrained-str]", 2), "stop.2"),
    (("body", "messages", 0, "content", "list[ContentPart]", 0, "type"), "messages.0.content.0.type"),
    (("body", "body", "model"), "body.model"),  # a field named like a location is still named
    (("query", "limit"), "limit"),
    ((), None),
])
def test_loc_to_param_drops_locations_and_union_tags(loc, param):
    assert loc_to_param(loc) == param


def test_a_value_the_database_cannot_hold_is_a_400_not_a_500(client, alice):
    for path in ("/v1/files/a%00b", "/v1/fine_tuning/jobs?after=x%00y"):
        err = error_of(client.get(path, headers=alice.headers), 400)
        assert err["code"] == "invalid_value" and "NUL" in err["message"]
