"""How fast LoRA training runs on a kind of device: the preflight's time estimate (ETA).

A LoRA step costs about ``4 N`` FLOPs per trained token for a model of ``N`` parameters: ``2 N`` in the
forward pass and ``2 N`` in the backward pass, which through a frozen base computes input gradients
only (the adapters' own weight gradients are negligible). The rates below are *effective* FLOP/s of
that count, i.e. what ``bench/finetune.py`` at its defaults measured as tokens/s times ``4 N``, so the
ETA of a job is ``tokens x epochs x 4 N / rate``.

Where each rate comes from (refresh them from ``bench/finetune.py`` / ``bench/gpu_check.sh`` figures):
- ``cpu``: SmolLM2-135M (N = 134.5 M) on a 2-core AMD EPYC host, unloaded: 181-227 tokens/s measured
  for issue 12 (204 tokens/s median -> 110 GFLOP/s for 2 cores, 55 GFLOP/s per core); a host's rate
  scales with its core count. Busy shared hosts run far slower (issue 12's loaded runs: 5-20 tokens/s).
- CUDA kinds: no GPU figure measured yet; assumed 30% of the card's dense bf16 peak (``ASSUMED_GPU_UTILISATION``)
  until ``bench/gpu_check.sh`` measures one.
"""
from __future__ import annotations

import os

CPU_FLOPS_PER_CORE = 55e9
ASSUMED_GPU_UTILISATION = 0.30
GPU_PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12,
                       "L4": 121e12, "T4": 65e12, "V100": 125e12, "RTX 4090": 165e12, "RTX 3090": 71e12}
GPU_FALLBACK_PEAK_FLOPS = 100e12  # an unknown card: a mid-range data-centre GPU
LORA_FLOPS_PER_PARAM_TOKEN = 4


def local_device_kind() -> str:
    """``cpu`` or the CUDA card's name (e.g. ``NVIDIA H200``) of the host this runs on."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name()
    except ImportError:
        pass
    return "cpu"


def training_flops_per_s(device_kind: str, cpu_cores: int | None = None) -> tuple[float, str]:
    """(effective FLOP/s, where the figure comes from) for a device kind (see the module docstring)."""
    if device_kind == "cpu":
        cores = cpu_cores or os.cpu_count() or 1
        return CPU_FLOPS_PER_CORE * cores, f"measured: bench/finetune.py on CPU, {cores} cores"
    peak = next((v for k, v in GPU_PEAK_BF16_FLOPS.items() if k in device_kind), GPU_FALLBACK_PEAK_FLOPS)
    return peak * ASSUMED_GPU_UTILISATION, f"assumed: {ASSUMED_GPU_UTILISATION:.0%} of {device_kind}'s bf16 peak"


def estimate_training_seconds(train_tokens: int, num_epochs: float, n_params: int, device_kind: str) -> dict:
    """The run's ETA and its basis, JSON-safe."""
    rate, source = training_flops_per_s(device_kind)
    tokens = train_tokens * num_epochs
    tokens_per_s = rate / (LORA_FLOPS_PER_PARAM_TOKEN * n_params)
    return {"estimated_seconds": round(tokens / tokens_per_s, 1), "device_kind": device_kind,
            "tokens_per_s": round(tokens_per_s, 1), "basis": source}
