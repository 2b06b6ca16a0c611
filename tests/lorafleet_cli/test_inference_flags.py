"""``--dtype`` and ``--deterministic`` on ``up`` / ``serve`` become the settings the inference server (a child
process of ``up``) reads: ``LORAFLEET_INFERENCE_DTYPE`` and ``LORAFLEET_BATCH_INVARIANT``."""
from __future__ import annotations

import pytest

from lorafleet_cli import server_commands
from lorafleet_cli.main import main
from lorafleet_cli.server_commands import _apply_env
from models.settings import Settings, get_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("LORAFLEET_INFERENCE_DTYPE", "LORAFLEET_BATCH_INVARIANT"):
        monkeypatch.setenv(name, "")  # restored (unset) after the test
    yield
    get_settings.cache_clear()


@pytest.fixture
def parsed(monkeypatch):
    """The namespace each server command's ``cmd_*`` receives, with the settings applied (nothing started)."""
    seen = []

    def capture(args):
        _apply_env(args)
        seen.append(args)
        return 0

    for name in ("cmd_up", "cmd_serve"):
        monkeypatch.setattr(server_commands, name, capture)
    return seen


@pytest.mark.parametrize("command", ["up", "serve"])
def test_flags_become_settings(command, parsed):
    assert main([command, "--dtype", "float32", "--deterministic"]) == 0
    settings = get_settings()
    assert settings.inference_dtype == "float32" and settings.batch_invariant is True
    assert parsed[0].dtype == "float32" and parsed[0].deterministic is True


def test_without_flags_the_environment_decides(monkeypatch, parsed):
    monkeypatch.setenv("LORAFLEET_INFERENCE_DTYPE", "bfloat16")
    assert main(["serve"]) == 0
    settings = get_settings()
    assert settings.inference_dtype == "bfloat16" and settings.batch_invariant is False
    assert parsed[0].port == 8001 and parsed[0].base_model == "smollm2-135m-instruct" and parsed[0].data_dir is None


def test_an_unknown_dtype_is_refused(monkeypatch, parsed, capsys):
    assert main(["serve", "--dtype", "fp8"]) == 2 and not parsed
    assert "--dtype" in capsys.readouterr().err
    monkeypatch.setenv("LORAFLEET_INFERENCE_DTYPE", "fp8")
    with pytest.raises(ValueError, match="LORAFLEET_INFERENCE_DTYPE"):
        Settings()
