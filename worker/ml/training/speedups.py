"""The loop's device-level speed techniques, each switched by a ``FinetuneHyperparameters`` field.

None of them changes the learning math (tests/worker/ml/training/test_speedups.py trains with each
on and off and compares per-step losses and adapter weights at fp32):

- ``attention``: which attention kernel the base model is loaded with. ``auto`` is FlashAttention-2 on
  CUDA when ``flash_attn`` imports (packed rows then run as variable-length sequences, no mask) and
  PyTorch SDPA elsewhere (packed rows get a block-diagonal mask from ``position_ids``).
- ``compile``: ``torch.compile`` of each decoder layer (regional: all layers share one compiled
  graph). ``auto`` is on for CUDA only: on the 2-core CPU hosts we measured, compiling cost more than
  it saved (eager 16-18 tokens/s, compiled 7-10 tokens/s on the steps after the compile).
- ``liger_kernels``: Liger's fused Triton RMSNorm / RoPE / SwiGLU on CUDA (``auto``: when
  ``liger_kernel`` imports; never needed on CPU, where Triton does not run).
- ``cpu_threads``: torch's intra-op threads on CPU (0 leaves torch's default, one per core).
"""
from __future__ import annotations

import importlib.util
from typing import Any

import torch

from contracts.configs import FinetuneHyperparameters


def importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def attention_implementation(hp: FinetuneHyperparameters, device: torch.device) -> str:
    """The ``attn_implementation`` the base model is loaded with (see the module docstring)."""
    if hp.attention != "auto":
        return hp.attention
    if device.type == "cuda" and importable("flash_attn"):
        return "flash_attention_2"
    return "sdpa"


def apply_cpu_threads(hp: FinetuneHyperparameters, device: torch.device) -> None:
    """``cpu_threads`` > 0 sets torch's intra-op thread count for this process (CPU runs only)."""
    if device.type == "cpu" and hp.cpu_threads > 0:
        torch.set_num_threads(hp.cpu_threads)


def liger_enabled(hp: FinetuneHyperparameters, device: torch.device) -> bool:
    if hp.liger_kernels == "off" or device.type != "cuda":
        return False
    if hp.liger_kernels == "on" and not importable("liger_kernel"):
        raise ValueError("liger_kernels='on' needs the liger-kernel package on the training host")
    return importable("liger_kernel")


def apply_liger_kernels(model: Any, hp: FinetuneHyperparameters, device: torch.device) -> bool:
    """Patch the base model's RMSNorm / RoPE / SwiGLU with Liger's kernels (before LoRA wraps it).
    The loss stays ours (``loss.py``: head + cross-entropy fused in chunks on labelled positions)."""
    if not liger_enabled(hp, device):
        return False
    from liger_kernel.transformers import _apply_liger_kernel_to_instance

    _apply_liger_kernel_to_instance(model=model, rope=True, rms_norm=True, swiglu=True, cross_entropy=False,
                                    fused_linear_cross_entropy=False)
    return True


def compile_enabled(hp: FinetuneHyperparameters, device: torch.device) -> bool:
    return hp.compile == "on" or (hp.compile == "auto" and device.type == "cuda")


def compile_decoder_layers(model: Any, hp: FinetuneHyperparameters, device: torch.device) -> bool:
    """``torch.compile`` each decoder layer in place (the compile happens on the first steps, inside
    the loop's timing). Returns whether it did."""
    if not compile_enabled(hp, device):
        return False
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    for layer in base.model.layers:
        layer.compile(dynamic=True)
    return True


def describe_speedups(hp: FinetuneHyperparameters, device: torch.device) -> dict:
    """What the run really uses (after ``auto`` is resolved), for the run's record and the benchmark."""
    return {"packing": hp.packing, "fused_head_loss": hp.fused_head_loss, "loss_chunk_tokens": hp.loss_chunk_tokens,
            "head_labelled_only": hp.head_labelled_only,
            "attention": attention_implementation(hp, device), "compile": compile_enabled(hp, device),
            "liger_kernels": liger_enabled(hp, device), "cpu_threads": torch.get_num_threads()}
