"""Users and keys: creating users is for admins (403 otherwise); anyone manages their own keys only."""
from __future__ import annotations

import pytest


@pytest.mark.parametrize("method,path", [("post", "/v1/users"), ("get", "/v1/users")])
def test_user_admin_needs_an_admin_key(client, alice, method, path):
    r = client.request(method.upper(), path, headers=alice.headers, json={"name": "x"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


def test_admin_creates_users_names_are_unique_and_checked(client, admin):
    r = client.post("/v1/users", headers=admin.headers, json={"name": "carol", "share_weight": 2})
    assert r.status_code == 201 and r.json()["api_key"] and r.json()["share_weight"] == 2
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {r.json()['api_key']}"}).json()
    assert (me["name"], me["is_admin"]) == ("carol", False)
    again = client.post("/v1/users", headers=admin.headers, json={"name": "carol"})
    assert again.status_code == 409 and again.json()["error"]["param"] == "name"
    bad = client.post("/v1/users", headers=admin.headers, json={"name": "no spaces"})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "name"
    extra = client.post("/v1/users", headers=admin.headers, json={"name": "dave", "root": True})
    assert extra.status_code == 422 and extra.json()["error"]["param"] == "root"
    assert {u["name"] for u in client.get("/v1/users", headers=admin.headers).json()["data"]} >= {"carol"}


def test_keys_are_ones_own_and_revoking_one_stops_it_at_once(client, alice, bob):
    r = client.post(f"/v1/users/{alice.id}/keys", headers=alice.headers, json={"name": "ci"})
    assert r.status_code == 201 and r.json()["name"] == "ci"
    new = {"Authorization": f"Bearer {r.json()['api_key']}"}
    assert client.get("/v1/me", headers=new).status_code == 200
    keys = client.get(f"/v1/users/{alice.id}/keys", headers=alice.headers).json()["data"]
    assert len(keys) == 2 and all("api_key" not in k for k in keys)
    for method, path in (("get", f"/v1/users/{alice.id}/keys"), ("post", f"/v1/users/{alice.id}/keys"),
                         ("delete", f"/v1/users/{alice.id}/keys/{r.json()['id']}")):
        other = client.request(method.upper(), path, headers=bob.headers)
        assert other.status_code == 404 and other.json()["error"]["param"] == "user_id"
    gone = client.delete(f"/v1/users/{alice.id}/keys/nope", headers=alice.headers)
    assert gone.status_code == 404 and gone.json()["error"]["param"] == "key_id"
    revoked = client.delete(f"/v1/users/{alice.id}/keys/{r.json()['id']}", headers=alice.headers)
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    assert client.get("/v1/me", headers=new).status_code == 401
    assert client.get("/v1/me", headers=alice.headers).status_code == 200


def test_an_admin_manages_anyones_keys(client, admin, alice):
    assert client.post(f"/v1/users/{alice.id}/keys", headers=admin.headers).status_code == 201
