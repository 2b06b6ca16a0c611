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


def test_an_admin_sets_a_users_weight_and_caps_and_null_clears_a_cap(client, admin, alice):
    created = client.post("/v1/users", headers=admin.headers,
                          json={"name": "carol", "gpu_hours_per_day": 4, "teacher_usd_per_day": 2.5})
    assert created.status_code == 201
    assert (created.json()["gpu_hours_per_day"], created.json()["teacher_usd_per_day"]) == (4, 2.5)
    url = f"/v1/users/{alice.id}"
    r = client.patch(url, headers=admin.headers, json={"share_weight": 3, "max_running_jobs": 5,
                                                       "gpu_hours_per_day": 10, "teacher_usd_per_day": 1})
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in ("share_weight", "max_running_jobs", "gpu_hours_per_day",
                                     "teacher_usd_per_day")} == {"share_weight": 3, "max_running_jobs": 5,
                                                                 "gpu_hours_per_day": 10, "teacher_usd_per_day": 1}
    r = client.patch(url, headers=admin.headers, json={"gpu_hours_per_day": None})  # only what is given changes
    assert (r.json()["gpu_hours_per_day"], r.json()["max_running_jobs"], r.json()["share_weight"]) == (None, 5, 3)
    me = client.get("/v1/me", headers=alice.headers).json()
    assert (me["share_weight"], me["gpu_hours_per_day"], me["teacher_usd_per_day"]) == (3, None, 1)


def test_patching_users_is_for_admins_and_checks_its_values(client, admin, alice, bob):
    r = client.patch(f"/v1/users/{bob.id}", headers=alice.headers, json={"share_weight": 100})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    r = client.patch("/v1/users/user-nope", headers=admin.headers, json={"share_weight": 2})
    assert r.status_code == 404 and r.json()["error"]["param"] == "user_id"
    for body, param in (({"share_weight": None}, "share_weight"), ({"is_active": None}, "is_active"),
                        ({"share_weight": 0}, "share_weight"), ({"max_running_jobs": 0}, "max_running_jobs"),
                        ({"gpu_hours_per_day": -1}, "gpu_hours_per_day"), ({"name": "x"}, "name")):
        r = client.patch(f"/v1/users/{bob.id}", headers=admin.headers, json=body)
        assert r.status_code == 422 and r.json()["error"]["param"] == param


def test_a_deactivated_user_is_locked_out_at_once(client, admin, alice):
    assert client.get("/v1/me", headers=alice.headers).status_code == 200  # now in the auth cache
    r = client.patch(f"/v1/users/{alice.id}", headers=admin.headers, json={"is_active": False})
    assert r.status_code == 200 and r.json()["is_active"] is False
    assert client.get("/v1/me", headers=alice.headers).status_code == 401
    client.patch(f"/v1/users/{alice.id}", headers=admin.headers, json={"is_active": True})
    assert client.get("/v1/me", headers=alice.headers).status_code == 200
