"""``lora_target_modules`` against the base model's linear modules: PEFT's matching rule, the
architecture of built-in and registered models (config.json, GGUF header), unknown ones accepted."""
from __future__ import annotations

import json
import struct

import pytest

from api.lora_targets import gguf_architecture, peft_matches, source_architecture
from tests.api.routes.job_kit import ALPACA_LINE, error_of


@pytest.mark.parametrize("target,module,hit", [
    ("q_proj", "model.layers.{i}.self_attn.q_proj", True),
    ("self_attn.q_proj", "model.layers.{i}.self_attn.q_proj", True),
    ("layers.3.self_attn.q_proj", "model.layers.{i}.self_attn.q_proj", True),
    ("model.layers.{i}.self_attn.q_proj", "model.layers.{i}.self_attn.q_proj", True),
    ("lm_head", "lm_head", True),
    ("proj", "model.layers.{i}.self_attn.q_proj", False),  # PEFT matches whole name parts
    ("attn.q_proj", "model.layers.{i}.self_attn.q_proj", False),
    ("layers.x.self_attn.q_proj", "model.layers.{i}.self_attn.q_proj", False),
    ("__import__('os')", "lm_head", False),
    ("", "lm_head", False),
])
def test_peft_matching_rule(target, module, hit):
    assert peft_matches(target, module) is hit


def gguf_bytes(arch: str, version: int = 3) -> bytes:
    key, value = b"general.architecture", arch.encode()
    return (b"GGUF" + struct.pack("<IQQ", version, 0, 1) + struct.pack("<Q", len(key)) + key
            + struct.pack("<I", 8) + struct.pack("<Q", len(value)) + value)


def test_architecture_from_sources(tmp_path):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (tmp_path / "m.gguf").write_bytes(gguf_bytes("qwen2"))
    (tmp_path / "old.gguf").write_bytes(gguf_bytes("llama", version=1))
    (tmp_path / "junk.gguf").write_bytes(b"GGUF\x03")
    assert source_architecture(str(tmp_path / "hf")) == "gpt2"
    assert source_architecture(str(tmp_path / "m.gguf")) == "qwen2" == gguf_architecture(tmp_path / "m.gguf")
    assert source_architecture("builtin:smollm2-135m-instruct") == "llama"
    for unknown in ("old.gguf", "junk.gguf", "missing", "missing.gguf"):
        assert source_architecture(str(tmp_path / unknown)) is None


def test_registered_models_are_checked_by_their_architecture(client, app, alice, upload, tmp_path):
    from models.db import session_scope
    from models.registry import BaseModelEntry

    (tmp_path / "gpt").mkdir()
    (tmp_path / "gpt" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "config.json").write_text(json.dumps({"model_type": "brand-new-arch"}))
    (tmp_path / "l.gguf").write_bytes(gguf_bytes("llama"))
    with session_scope(app.state.session_factory) as s:
        for name, source in (("gpt", tmp_path / "gpt"), ("new", tmp_path / "new"), ("gg", tmp_path / "l.gguf"),
                             ("gone", tmp_path / "nowhere")):
            s.add(BaseModelEntry(name=name, source=str(source)))
    f = upload(alice, ALPACA_LINE)["id"]

    def preflight(model: str, targets) -> int:
        r = client.post("/v1/preflight/jobs", headers=alice.headers, json={
            "model": model, "training_file": f, "hyperparameters": {"lora_target_modules": targets}})
        assert r.status_code in (200, 422), r.text
        if r.status_code == 422:
            assert error_of(r)["param"] == "hyperparameters.lora_target_modules"
        return r.status_code

    assert preflight("gpt", ["q_proj"]) == 422 and preflight("gpt", ["c_attn", "mlp.c_proj"]) == 200
    assert preflight("gg", ["c_attn"]) == 422 and preflight("gg", ["gate_proj"]) == 200
    assert preflight("new", ["anything"]) == 200 and preflight("gone", ["anything"]) == 200  # the worker checks
