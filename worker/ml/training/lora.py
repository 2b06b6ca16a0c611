"""LoRA adapters: build for training (with warm start), save + verify, load, merge into the base.

Every folder is written under a temporary name and renamed into place, so a half-written adapter
never appears. Saved adapters are plain PEFT folders that ``peft.PeftModel.from_pretrained`` loads.
"""
from __future__ import annotations

import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from contracts.configs import FinetuneHyperparameters
from worker.ml.training.checkpoints import write_text_files

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


def lora_config(hp: FinetuneHyperparameters) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=hp.lora_r, lora_alpha=hp.lora_alpha, lora_dropout=hp.lora_dropout, bias="none",
                      target_modules=hp.lora_target_modules, task_type="CAUSAL_LM")


def build_lora_model(base_model: torch.nn.Module, hp: FinetuneHyperparameters) -> Any:
    """Wrap the frozen base with fresh LoRA weights, or with ``hp.init_adapter``'s (warm start)."""
    from peft import get_peft_model

    model = get_peft_model(base_model, lora_config(hp))
    if hp.init_adapter:
        load_adapter_weights(model, Path(hp.init_adapter))
    return model


def load_adapter_weights(model: Any, adapter_dir: Path) -> None:
    """Copy a saved adapter's weights into ``model``; its LoRA shape must match exactly."""
    from peft import get_peft_model_state_dict, set_peft_model_state_dict
    from safetensors.torch import load_file

    weights_file = Path(adapter_dir) / ADAPTER_WEIGHTS
    if not weights_file.is_file():
        raise ValueError(f"init adapter {adapter_dir} has no {ADAPTER_WEIGHTS}")
    weights = load_file(str(weights_file))
    expected = get_peft_model_state_dict(model)
    if set(weights) != set(expected) or any(weights[k].shape != expected[k].shape for k in expected):
        raise ValueError(f"init adapter {adapter_dir} does not match lora_r / lora_target_modules of this job")
    set_peft_model_state_dict(model, weights)


def verify_adapter_files(adapter_dir: Path) -> None:
    """The folder has a config and a non-empty weights file with LoRA tensors in it."""
    from safetensors import safe_open

    adapter_dir = Path(adapter_dir)
    weights_file = adapter_dir / ADAPTER_WEIGHTS
    if not (adapter_dir / ADAPTER_CONFIG).is_file():
        raise RuntimeError(f"{adapter_dir} has no {ADAPTER_CONFIG}")
    if not weights_file.is_file() or weights_file.stat().st_size == 0:
        raise RuntimeError(f"{weights_file} is missing or empty")
    with safe_open(str(weights_file), framework="pt") as handle:
        keys = list(handle.keys())
    if not any("lora_" in key for key in keys):
        raise RuntimeError(f"{weights_file} holds no LoRA tensors")


@torch.no_grad()
def _probe_logits(model: Any, probe_ids: torch.Tensor, autocast_dtype: torch.dtype | None) -> torch.Tensor:
    with torch.autocast(probe_ids.device.type, dtype=autocast_dtype or torch.bfloat16,
                        enabled=autocast_dtype is not None):
        return model(input_ids=probe_ids, use_cache=False).logits.float()


def save_adapter(model: Any, out_dir: Path, probe_ids: torch.Tensor | None = None,
                 autocast_dtype: torch.dtype | None = None, extra_files: Mapping[str, str] | None = None) -> Path:
    """Save the trained adapter to ``out_dir`` (temp name, verified, renamed) and return it;
    ``extra_files`` (name -> text, e.g. the run's ``config.json``) go in before the rename.

    Verification: the files are non-empty, and loading them back as a second adapter on the same
    base gives the same logits as the in-memory adapter on ``probe_ids``.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".tmp-{out_dir.name}-{uuid.uuid4().hex[:8]}"
    was_training = model.training
    try:
        model.save_pretrained(str(tmp))
        write_text_files(tmp, extra_files)
        verify_adapter_files(tmp)
        if probe_ids is not None:
            model.eval()
            expected = _probe_logits(model, probe_ids, autocast_dtype)
            model.load_adapter(str(tmp), adapter_name="_verify")
            model.set_adapter("_verify")
            reloaded = _probe_logits(model, probe_ids, autocast_dtype)
            model.set_adapter("default")
            model.delete_adapter("_verify")
            if not torch.allclose(expected, reloaded, atol=1e-4, rtol=1e-4):
                raise RuntimeError("the saved adapter does not reproduce the trained model's logits")
        return _move_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        model.train(was_training)


def load_adapter_model(base_model_dir: Path, adapter_dir: Path, device: str = "cpu",
                       dtype: torch.dtype = torch.float32) -> Any:
    """Base model + adapter for inference (eval mode), as plain PEFT would load them."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(base_model_dir), dtype=dtype)
    model = PeftModel.from_pretrained(base, str(adapter_dir))
    return model.to(device).eval()


def merge_adapter(base_model_dir: Path, adapter_dir: Path, out_dir: Path) -> Path:
    """Fold the adapter into the base weights; write a full HF checkpoint with its tokenizer."""
    from transformers import AutoTokenizer

    verify_adapter_files(Path(adapter_dir))
    model = load_adapter_model(base_model_dir, adapter_dir, device="cpu")
    merged = model.merge_and_unload()
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".tmp-{out_dir.name}-{uuid.uuid4().hex[:8]}"
    try:
        merged.save_pretrained(str(tmp))
        AutoTokenizer.from_pretrained(str(base_model_dir)).save_pretrained(str(tmp))
        for name in ("generation_config.json",):
            if (Path(base_model_dir) / name).is_file() and not (tmp / name).exists():
                shutil.copy2(Path(base_model_dir) / name, tmp / name)
        return _move_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _move_into_place(tmp: Path, out_dir: Path) -> Path:
    """Replace ``out_dir`` with the finished folder ``tmp`` (same filesystem: a rename)."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir
