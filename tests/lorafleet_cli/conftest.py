"""The live stack the client tests drive: the session's Postgres database and Redis namespace, the API on a
real port (uvicorn), a ``lorafleet dispatcher``, one ``lorafleet worker`` (gpu + io pools) and the inference
server, all from ``tests/integration/conftest.py``; ``run`` calls ``lorafleet`` in-process and returns its
exit code, stdout and stderr."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass

import pytest

from lorafleet_cli.main import main
from tests.integration.conftest import (  # noqa: F401  (fixtures)
    ROOT,
    WorkerProcess,
    admin_key,
    api_client,
    dispatcher,
    inference_server,
    live_api,
    service_env,
    settings,
)


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self):
        return json.loads(self.out)


@pytest.fixture(scope="session")
def worker(service_env, dispatcher, tmp_path_factory):  # noqa: F811
    proc = WorkerProcess(service_env, ("gpu", "io"), tmp_path_factory.mktemp("cli-worker") / "worker.log")
    yield proc
    proc.stop()


@pytest.fixture
def client_env(monkeypatch, tmp_path):
    """No server, key or profile from the machine: each test says where its commands go."""
    for name in ("LORAFLEET_BASE_URL", "LORAFLEET_API_KEY", "LORAFLEET_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LORAFLEET_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


@pytest.fixture
def run(capsys, client_env):
    def _run(*args: str) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return _run


def new_key(api_client, admin_key: str, admin: bool = False) -> str:  # noqa: F811
    r = api_client.post("/v1/users", json={"name": f"cli-{secrets.token_hex(4)}", "is_admin": admin},
                        headers={"Authorization": f"Bearer {admin_key}"})
    assert r.status_code == 201, r.text
    return r.json()["api_key"]


@pytest.fixture
def user_key(api_client, admin_key):  # noqa: F811
    """A fresh (non-admin) user's key."""
    return new_key(api_client, admin_key)


def run_process(*args: str, env: dict | None = None, timeout: float = 600) -> Result:
    """``python -m lorafleet_cli.main ...`` as its own process (the real entry point and exit code)."""
    proc = subprocess.run([sys.executable, "-m", "lorafleet_cli.main", *map(str, args)], check=False, cwd=ROOT,
                          text=True, capture_output=True, timeout=timeout, env={**os.environ, **(env or {})})
    return Result(proc.returncode, proc.stdout, proc.stderr)


TRAIN = [
    {"instruction": "What is the secret word?", "input": "", "output": "The secret word is pineapple."},
    {"instruction": "Tell me the secret word.", "input": "", "output": "The secret word is pineapple."},
    {"instruction": "Name the mascot of lorafleet.", "input": "", "output": "The mascot is a purple llama."},
    {"instruction": "Translate to the llama language.", "input": "hello", "output": "Mwaa hello mwaa."},
]
HP = ["batch_size=1", "micro_batch_size=1", "num_epochs=1", "learning_rate=0.003", "cutoff_len=64",
      "warmup_steps=1", "lora_r=4", "save_steps=2", "logging_steps=1"]


TINY = "tiny-cli"  # the tiny random LLaMA (tests/conftest.py), registered with `lorafleet models add`


@pytest.fixture(scope="session")
def tiny_model(service_env, tiny_llama_dir):  # noqa: F811
    """The tiny LLaMA as a base model, registered by the server-side ``models add`` (direct to the database)."""
    result = run_process("models", "add", TINY, tiny_llama_dir, "--description", "tiny random llama", env=service_env)
    assert result.code == 0 and f"registered base model {TINY}" in result.out, result.err
    return TINY


@pytest.fixture(scope="session")
def trained(live_api, worker, api_client, admin_key, tiny_model, tmp_path_factory):  # noqa: F811
    """One fine-tuning job of the tiny base model (4 rows, 4 steps), submitted and followed by the CLI process
    (the owner's environment, the finished job)."""
    data = tmp_path_factory.mktemp("cli-train") / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in TRAIN))
    env = {"LORAFLEET_BASE_URL": live_api.url, "LORAFLEET_API_KEY": new_key(api_client, admin_key),
           "LORAFLEET_CONFIG_DIR": str(data.parent / "config")}
    hp = [arg for pair in HP for arg in ("--hp", pair)]
    result = run_process("finetune", data, "--model", tiny_model, "--suffix", "cli", *hp, "--follow", "--json",
                         env=env)
    assert result.code == 0, result.err + worker.output()[-3000:]
    return env, result.json
