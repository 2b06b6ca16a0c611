"""Where a client command finds its server and key: flag, then environment, then the profile file."""
from __future__ import annotations

import stat

import pytest

from lorafleet_cli.client.config import (
    profiles_path,
    read_profiles,
    resolve,
    server_configured,
    write_profile,
)
from lorafleet_cli.client.errors import AUTH, BAD_INPUT, CliError


@pytest.fixture(autouse=True)
def config_dir(monkeypatch, tmp_path):
    for name in ("LORAFLEET_BASE_URL", "LORAFLEET_API_KEY", "LORAFLEET_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LORAFLEET_CONFIG_DIR", str(tmp_path / "cfg"))
    return tmp_path / "cfg"


def test_flag_beats_environment_beats_profile(monkeypatch):
    write_profile("default", "http://profile:1", "key-profile")
    assert resolve() == resolve(None, None, None)
    assert (resolve().base_url, resolve().api_key) == ("http://profile:1", "key-profile")
    monkeypatch.setenv("LORAFLEET_BASE_URL", "http://env:2")
    monkeypatch.setenv("LORAFLEET_API_KEY", "key-env")
    assert (resolve().base_url, resolve().api_key) == ("http://env:2", "key-env")
    flagged = resolve("http://flag:3/v1", "key-flag")
    assert (flagged.base_url, flagged.api_key, flagged.api_url) == ("http://flag:3/v1", "key-flag", "http://flag:3/v1")


def test_profiles_by_name_and_the_default(monkeypatch, config_dir):
    write_profile("work", "http://work:1", "k1")
    write_profile("home", "http://home:2", "k2", make_default=False)
    assert resolve().base_url == "http://work:1" and resolve(profile="home").api_key == "k2"
    monkeypatch.setenv("LORAFLEET_PROFILE", "home")
    assert resolve().base_url == "http://home:2"
    assert stat.S_IMODE(profiles_path().stat().st_mode) == 0o600
    assert read_profiles()["default"] == "work"
    with pytest.raises(CliError) as missing:
        resolve(profile="nope")
    assert missing.value.exit_code == BAD_INPUT and missing.value.param == "--profile"


def test_nothing_configured_is_bad_usage_and_no_key_is_auth():
    assert not server_configured()
    with pytest.raises(CliError) as no_server:
        resolve()
    assert no_server.value.exit_code == BAD_INPUT and "--base-url" in no_server.value.message
    with pytest.raises(CliError) as no_key:
        resolve("http://x:1")
    assert no_key.value.exit_code == AUTH
    assert resolve("http://x:1", need_key=False).api_key is None
    assert server_configured("http://x:1")


def test_an_unreadable_profile_file_is_named(config_dir):
    config_dir.mkdir()
    (config_dir / "profiles.json").write_text("{broken")
    with pytest.raises(CliError) as bad:
        resolve()
    assert bad.value.exit_code == BAD_INPUT and "profiles.json" in bad.value.message
