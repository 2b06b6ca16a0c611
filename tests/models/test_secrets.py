"""Secrets at rest: encrypted with the server key (configured, or a 0600 key file made once)."""
from __future__ import annotations

import stat

import pytest

from models.secrets import decrypt_secret, encrypt_secret
from models.settings import Settings


def settings(tmp_path, key: str = "") -> Settings:
    return Settings(LORAFLEET_DATA_DIR=str(tmp_path), LORAFLEET_SECRET_KEY=key)


def test_round_trip_with_a_configured_key(tmp_path):
    s = settings(tmp_path, "server-key")
    token = encrypt_secret(s, "sk-teacher")
    assert "sk-teacher" not in token
    assert decrypt_secret(settings(tmp_path / "other", "server-key"), token) == "sk-teacher"
    assert not (tmp_path / "secret.key").exists()


def test_round_trip_with_a_key_file(tmp_path):
    s = settings(tmp_path)
    token = encrypt_secret(s, "sk-teacher")
    key_file = tmp_path / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert decrypt_secret(settings(tmp_path), token) == "sk-teacher"


def test_another_key_cannot_decrypt(tmp_path):
    token = encrypt_secret(settings(tmp_path, "one"), "sk")
    with pytest.raises(ValueError, match="cannot be decrypted"):
        decrypt_secret(settings(tmp_path, "two"), token)


def test_hosts_sharing_a_store_share_the_generated_key(tmp_path):
    """Two data dirs (two hosts) on one artifact store: one key file, in the store, readable by both."""
    store = tmp_path / "shared"
    host_a = Settings(LORAFLEET_DATA_DIR=str(tmp_path / "a"), LORAFLEET_ARTIFACT_URI=str(store))
    host_b = Settings(LORAFLEET_DATA_DIR=str(tmp_path / "b"), LORAFLEET_ARTIFACT_URI=f"file://{store}")
    token = encrypt_secret(host_a, "sk-teacher")
    assert decrypt_secret(host_b, token) == "sk-teacher"
    assert stat.S_IMODE((store / ".lorafleet" / "secret.key").stat().st_mode) == 0o600
    assert not (tmp_path / "a" / "secret.key").exists() and not (tmp_path / "b" / "secret.key").exists()


def test_a_host_key_made_before_the_store_was_shared_becomes_the_shared_one(tmp_path):
    """Secrets encrypted before LORAFLEET_ARTIFACT_URI was set stay readable, on every host."""
    alone = Settings(LORAFLEET_DATA_DIR=str(tmp_path / "a"))
    token = encrypt_secret(alone, "sk-old")
    assert (tmp_path / "a" / "secret.key").exists()
    store = tmp_path / "shared"
    host_a = Settings(LORAFLEET_DATA_DIR=str(tmp_path / "a"), LORAFLEET_ARTIFACT_URI=str(store))
    host_b = Settings(LORAFLEET_DATA_DIR=str(tmp_path / "b"), LORAFLEET_ARTIFACT_URI=str(store))
    assert decrypt_secret(host_a, token) == "sk-old"
    assert decrypt_secret(host_b, token) == "sk-old"
