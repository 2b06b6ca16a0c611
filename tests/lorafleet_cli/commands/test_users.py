"""``lorafleet users`` and ``keys`` over HTTP (admin), and a revoked key exiting 3."""
from __future__ import annotations

import secrets

import pytest

pytestmark = pytest.mark.integration


def test_users_and_keys(live_api, admin_key, run, monkeypatch):
    monkeypatch.setenv("LORAFLEET_BASE_URL", live_api.url)
    monkeypatch.setenv("LORAFLEET_API_KEY", admin_key)
    name = f"cli-user-{secrets.token_hex(3)}"
    created = run("users", "create", name, "--weight", "2", "--json")  # a server is configured: over HTTP
    assert created.code == 0, created.err
    user, user_key = created.json, created.json["api_key"]
    assert user["name"] == name and user["share_weight"] == 2 and not user["is_admin"]
    assert name in {u["name"] for u in run("users", "list", "--json").json["data"]}
    updated = run("users", "update", user["id"], "--max-running-jobs", "3", "--json")
    assert updated.code == 0 and updated.json["max_running_jobs"] == 3
    assert run("users", "create", name).code == 2  # the name is taken (409)
    key = run("keys", "create", "--user", user["id"], "--name", "ci", "--json").json
    listed = run("keys", "list", "--user", user["id"], "--json").json["data"]
    assert key["id"] in {k["id"] for k in listed} and all("api_key" not in k for k in listed)
    assert run("users", "me", "--api-key", key["api_key"], "--json").json["id"] == user["id"]
    revoked = run("keys", "revoke", key["id"], "--user", user["id"], "--json")
    assert revoked.code == 0 and revoked.json["revoked"] is True
    assert run("users", "me", "--api-key", key["api_key"]).code == 3
    assert run("users", "list", "--api-key", user_key).code == 3  # not an admin (403)
    assert run("keys", "list", "--api-key", user_key, "--json").json["data"][0]["prefix"]
