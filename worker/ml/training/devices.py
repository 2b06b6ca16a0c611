"""Device, precision and base-model loading for training.

CPU: fp32 master weights for everything trainable, bf16 autocast when the CPU has native bf16
(AVX512-BF16 / AMX), and the frozen linear weights stored in bf16 (autocast would cast them to
bf16 at every call anyway; storing them once saves the casts, and the values are identical).
CUDA: frozen base in bf16 (or fp16 with a grad scaler), LoRA weights in fp32, optional 8-bit /
4-bit loading through bitsandbytes and gradient checkpointing. bitsandbytes is only ever imported
on the CUDA path (through transformers' ``BitsAndBytesConfig``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from contracts.configs import FinetuneHyperparameters


@dataclass(frozen=True)
class TrainPrecision:
    device: torch.device
    autocast_dtype: torch.dtype | None  # None: plain fp32
    frozen_dtype: torch.dtype  # storage dtype of frozen linear weights
    use_grad_scaler: bool  # fp16 on CUDA

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.autocast_dtype]


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but CUDA is not available")
    return resolved


def cpu_has_native_bf16() -> bool:
    """True when oneDNN runs bf16 matmuls natively (AVX512-BF16 or AMX); emulated bf16 is slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def choose_precision(precision: str, device: torch.device) -> TrainPrecision:
    """Map ``hp.precision`` ("auto", "bf16", "fp16", "fp32") onto what the device can do."""
    if precision == "fp32":
        return TrainPrecision(device, None, torch.float32, False)
    if device.type == "cuda":
        if precision == "fp16" or (precision == "auto" and not torch.cuda.is_bf16_supported()):
            return TrainPrecision(device, torch.float16, torch.float16, True)
        return TrainPrecision(device, torch.bfloat16, torch.bfloat16, False)
    if device.type == "cpu":
        if precision == "bf16" or (precision == "auto" and cpu_has_native_bf16()):
            return TrainPrecision(device, torch.bfloat16, torch.bfloat16, False)
        return TrainPrecision(device, None, torch.float32, False)  # fp16 autocast on CPU is not worth it
    return TrainPrecision(device, None, torch.float32, False)


def quantization_config(hp: FinetuneHyperparameters, device: torch.device) -> Any | None:
    """A ``BitsAndBytesConfig`` for 8-bit / 4-bit (QLoRA) loading on CUDA; None otherwise."""
    if not (hp.load_in_8bit or hp.load_in_4bit) or device.type != "cuda":
        return None
    from transformers import BitsAndBytesConfig  # imports bitsandbytes lazily, CUDA only

    if hp.load_in_8bit:
        return BitsAndBytesConfig(load_in_8bit=True)
    compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute)


def load_base_for_training(base_model_dir: Path, hp: FinetuneHyperparameters, precision: TrainPrecision):
    """The frozen base model on its device, ready for ``get_peft_model``.

    CPU: fp32, then the decoder's linear weights cast to the autocast dtype. CUDA: loaded straight
    in the half dtype onto the GPU (or quantized by bitsandbytes), so a 7B model never sits in fp32.
    """
    from transformers import AutoModelForCausalLM

    from worker.ml.training.speedups import apply_liger_kernels, attention_implementation

    quant = quantization_config(hp, precision.device)
    on_cuda = precision.device.type == "cuda"
    kwargs: dict[str, Any] = {"dtype": precision.frozen_dtype if on_cuda else torch.float32,
                              "attn_implementation": attention_implementation(hp, precision.device)}
    if on_cuda:
        kwargs["device_map"] = {"": precision.device.index or 0}
    if quant is not None:
        kwargs["quantization_config"] = quant
    model = AutoModelForCausalLM.from_pretrained(str(base_model_dir), **kwargs)
    model.config.use_cache = False
    apply_liger_kernels(model, hp, precision.device)
    if quant is not None:
        from peft import prepare_model_for_kbit_training

        return prepare_model_for_kbit_training(model, use_gradient_checkpointing=hp.gradient_checkpointing,
                                               gradient_checkpointing_kwargs={"use_reentrant": False})
    model.requires_grad_(False)
    if not on_cuda:
        model.to(precision.device)
        cast_frozen_linear_weights(model, precision.frozen_dtype)
    if hp.gradient_checkpointing and on_cuda:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    return model


def cast_frozen_linear_weights(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Store the decoder's frozen ``nn.Linear`` weights in ``dtype``; embeddings and norms stay fp32.

    The output head is left alone (it may be tied to the embeddings); the loss casts it once per step.
    """
    if dtype == torch.float32:
        return
    head = model.get_output_embeddings()
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module is not head:
            module.weight.data = module.weight.data.to(dtype)
            if module.bias is not None:
                module.bias.data = module.bias.data.to(dtype)
