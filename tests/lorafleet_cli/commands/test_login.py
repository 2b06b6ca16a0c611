"""``lorafleet login`` writes a 0600 profile later commands use; no key or a wrong one exits 3."""
from __future__ import annotations

import json
import stat

import pytest

pytestmark = pytest.mark.integration


def test_login_writes_a_private_profile_that_later_commands_use(live_api, user_key, run, client_env):
    result = run("login", "--base-url", live_api.url, "--api-key", user_key, "--json")
    assert result.code == 0, result.err
    path = client_env / "config" / "profiles.json"
    assert result.json["path"] == str(path) and result.json["user"]["name"].startswith("cli-")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["profiles"]["default"] == {"base_url": live_api.url, "api_key": user_key}
    me = run("users", "me", "--json")  # no flags, no environment: the profile
    assert me.code == 0 and me.json["id"] == result.json["user"]["id"]
    assert run("models", "list", "--json").json["data"][0]["id"] == "smollm2-135m-instruct"
    named = run("login", "--base-url", live_api.url, "--api-key", user_key, "--profile", "other", "--no-default")
    assert named.code == 0 and "profile 'other'" in named.out
    assert run("users", "me", "--profile", "other", "--json").json["id"] == me.json["id"]
    assert run("users", "me", "--profile", "missing").code == 2


def test_a_missing_or_wrong_key_exits_3(live_api, run, monkeypatch):
    missing = run("jobs", "list", "--base-url", live_api.url)
    assert missing.code == 3 and "no API key" in missing.err
    wrong = run("jobs", "list", "--base-url", live_api.url, "--api-key", "lf-wrong")
    assert wrong.code == 3 and "error:" in wrong.err and "Traceback" not in wrong.err
    monkeypatch.setenv("LORAFLEET_API_KEY", "lf-wrong")
    assert run("login", "--base-url", live_api.url).code == 3  # checked before it is saved
    nowhere = run("jobs", "list", "--base-url", "http://127.0.0.1:9", "--api-key", "x")
    assert nowhere.code == 1 and "cannot talk to the server" in nowhere.err
