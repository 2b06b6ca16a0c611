"""``--dtype`` and ``--deterministic`` on ``up`` / ``serve`` become the settings the inference server (a child
process of ``up``) reads: ``LORAFLEET_INFERENCE_DTYPE`` and ``LORAFLEET_BATCH_INVARIANT``."""
from __future__ import annotations

import pytest

from lorafleet_cli.main import _apply_env, build_parser
from models.settings import Settings, get_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("LORAFLEET_INFERENCE_DTYPE", "LORAFLEET_BATCH_INVARIANT"):
        monkeypatch.setenv(name, "")  # restored (unset) after the test
    yield
    get_settings.cache_clear()


@pytest.mark.parametrize("command", ["up", "serve"])
def test_flags_become_settings(command):
    _apply_env(build_parser().parse_args([command, "--dtype", "float32", "--deterministic"]))
    settings = get_settings()
    assert settings.inference_dtype == "float32" and settings.batch_invariant is True


def test_without_flags_the_environment_decides(monkeypatch):
    monkeypatch.setenv("LORAFLEET_INFERENCE_DTYPE", "bfloat16")
    _apply_env(build_parser().parse_args(["serve"]))
    settings = get_settings()
    assert settings.inference_dtype == "bfloat16" and settings.batch_invariant is False


def test_an_unknown_dtype_is_refused(monkeypatch):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--dtype", "fp8"])
    monkeypatch.setenv("LORAFLEET_INFERENCE_DTYPE", "fp8")
    with pytest.raises(ValueError, match="LORAFLEET_INFERENCE_DTYPE"):
        Settings()
