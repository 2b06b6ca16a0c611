"""The server-side commands keep the flags scripts and tests start them with (``lorafleet_cli.server_app``)."""
from __future__ import annotations

import pytest

from lorafleet_cli import server_commands
from lorafleet_cli.main import main


@pytest.fixture
def parsed(monkeypatch):
    seen = []
    for name in ("cmd_worker", "cmd_api", "cmd_dispatcher", "cmd_migrate", "cmd_users_create", "cmd_models_add",
                 "cmd_demo"):
        monkeypatch.setattr(server_commands, name, lambda args, name=name: seen.append((name, vars(args))) or 0)
    return seen


@pytest.mark.parametrize("argv, name, expected", [
    (["worker", "--queues", "gpu,io", "--concurrency", "2", "--memory-gb", "3.5", "--host", "h1", "--gpu", "0,1",
      "--loglevel", "WARNING", "--data-dir", "/d"], "cmd_worker",
     {"queues": "gpu,io", "concurrency": 2, "memory_gb": 3.5, "host": "h1", "gpus": "0,1", "loglevel": "WARNING",
      "data_dir": "/d"}),
    (["worker"], "cmd_worker", {"queues": "gpu", "concurrency": 1, "memory_gb": None, "gpus": None, "host": None}),
    (["api", "--host", "127.0.0.1", "--port", "9000", "--workers", "1"], "cmd_api",
     {"host": "127.0.0.1", "port": 9000, "workers": 1}),
    (["dispatcher", "--loglevel", "DEBUG"], "cmd_dispatcher", {"loglevel": "DEBUG", "data_dir": None}),
    (["migrate", "--data-dir", "/x"], "cmd_migrate", {"data_dir": "/x"}),
    (["users", "create", "bench-admin", "--admin"], "cmd_users_create", {"name": "bench-admin", "admin": True}),
    (["models", "add", "tiny", "/m", "--description", "a model"], "cmd_models_add",
     {"name": "tiny", "path": "/m", "description": "a model"}),
    (["demo", "--port", "8800"], "cmd_demo", {"port": 8800, "data_dir": None}),
])
def test_flags_parse_as_before(argv, name, expected, parsed, monkeypatch, tmp_path):
    monkeypatch.delenv("LORAFLEET_BASE_URL", raising=False)
    monkeypatch.setenv("LORAFLEET_CONFIG_DIR", str(tmp_path))  # no profile: `users create` stays direct
    assert main(argv) == 0
    (called, args), = parsed
    assert called == name
    assert {k: args[k] for k in expected} == expected
