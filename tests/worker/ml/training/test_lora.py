"""Adapter save + verify, plain-PEFT loading, warm-start shape checks, merge export."""
from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from contracts.configs import FinetuneHyperparameters
from worker.ml.training.lora import (
    build_lora_model,
    load_adapter_model,
    load_adapter_weights,
    merge_adapter,
    save_adapter,
    verify_adapter_files,
)

IDS = torch.tensor([[1, 5, 9, 200, 17, 33, 4]])


def _trained_like_model(model_dir, hp=None):
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    base.requires_grad_(False)
    model = build_lora_model(base, hp or FinetuneHyperparameters())
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # a fresh adapter is a no-op; make it change the outputs
    return model.eval()


@pytest.fixture()
def saved(tiny_llama_dir, tmp_path):
    model = _trained_like_model(tiny_llama_dir)
    return model, save_adapter(model, tmp_path / "adapter", probe_ids=IDS)


def test_save_writes_verified_peft_folder(saved, tmp_path):
    model, path = saved
    assert path == tmp_path / "adapter"
    assert (path / "adapter_config.json").is_file() and (path / "adapter_model.safetensors").stat().st_size > 1000
    assert not list(tmp_path.glob(".tmp-*"))
    assert list(model.peft_config) == ["default"]  # the verification adapter is gone


def test_plain_peft_reload_gives_the_same_logits(saved, tiny_llama_dir):
    model, path = saved
    with torch.no_grad():
        expected = model(input_ids=IDS).logits
        base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
        assert not torch.allclose(base(input_ids=IDS).logits, expected, atol=1e-3)
        reloaded = load_adapter_model(tiny_llama_dir, path)
        assert not reloaded.training
        assert torch.allclose(reloaded(input_ids=IDS).logits, expected, atol=1e-5)


def test_verify_rejects_empty_or_incomplete_folders(saved, tmp_path):
    _, path = saved
    verify_adapter_files(path)
    (path / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(RuntimeError, match="empty"):
        verify_adapter_files(path)
    (path / "adapter_config.json").unlink()
    with pytest.raises(RuntimeError, match="adapter_config.json"):
        verify_adapter_files(path)


def test_warm_start_weights_must_match_the_lora_shape(saved, tiny_llama_dir):
    _, path = saved
    same = _trained_like_model(tiny_llama_dir)
    load_adapter_weights(same, path)
    other = _trained_like_model(tiny_llama_dir, FinetuneHyperparameters(lora_r=4))
    with pytest.raises(ValueError, match="does not match"):
        load_adapter_weights(other, path)


def test_merge_exports_a_full_checkpoint_with_tokenizer(saved, tiny_llama_dir, tmp_path):
    model, path = saved
    out = merge_adapter(tiny_llama_dir, path, tmp_path / "merged")
    assert out == tmp_path / "merged" and not list(tmp_path.glob(".tmp-*"))
    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    assert not any("lora" in k for k in merged.state_dict())
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=IDS).logits, model(input_ids=IDS).logits, atol=1e-4)
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.eos_token_id == AutoTokenizer.from_pretrained(tiny_llama_dir).eos_token_id
