"""A base model loaded for decoding, with its tokenizer and LoRA adapter cache.

``LoadedModel`` is what the engine's helpers (KV prefill, beam search, reference loss) are given
instead of the engine itself: the model, its device, the pad and end-of-sequence ids, and
``adapter_rows(names)``, which routes each batch row through its own adapter (PEFT's mixed-adapter
forward) for the duration of a block.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from worker.ml.decoding.adapter_cache import BASE_ADAPTER, AdapterCache
from worker.ml.decoding.rows import left_pad, positions_of
from worker.ml.training.devices import cpu_has_native_bf16, resolve_device

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
           "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """"auto": bf16 where the hardware runs it natively (CUDA, or a CPU with AVX512-BF16/AMX), else
    fp16 on old GPUs and fp32 on other CPUs. bf16 may change a few greedy answers; fp32 does not."""
    if dtype != "auto":
        if dtype not in _DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; choose auto or one of {sorted(_DTYPES)}")
        return _DTYPES[dtype]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    return torch.float32


@dataclass
class LoadedModel:
    model: Any  # the base causal LM (PEFT injects the LoRA layers into it in place)
    tokenizer: Any  # left-padding tokenizer of the base model
    device: torch.device
    dtype: torch.dtype
    adapters: AdapterCache
    pad_id: int
    eos_ids: set[int]
    _lora_layers: tuple[int, list[torch.nn.Module]] = field(default_factory=lambda: (0, []), repr=False)

    @classmethod
    def load(cls, base_model_dir: Path, device: str, dtype: str, adapter_cache_bytes: int) -> LoadedModel:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        resolved = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, resolved)
        tokenizer = AutoTokenizer.from_pretrained(base_model_dir)
        tokenizer.padding_side = "left"
        model = AutoModelForCausalLM.from_pretrained(base_model_dir, dtype=torch_dtype)
        model.to(resolved).eval()
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        eos = model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if tokenizer.eos_token_id is not None:
            eos_ids.add(tokenizer.eos_token_id)
        return cls(model, tokenizer, resolved, torch_dtype, AdapterCache(model, adapter_cache_bytes), pad_id, eos_ids)

    @property
    def max_positions(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 1 << 30))

    def adapter_name(self, adapter_dir: Path | None) -> str:
        """The PEFT adapter name a row runs through (loaded on first use); ``BASE_ADAPTER`` for the base model."""
        return BASE_ADAPTER if adapter_dir is None else self.adapters.get(adapter_dir).name

    @contextmanager
    def adapter_rows(self, names: list[str]) -> Iterator[None]:
        """Route each batch row through its own adapter (PEFT mixed-batch forward) for the block."""
        if self.adapters.peft_model is None:
            if any(n != BASE_ADAPTER for n in names):
                raise RuntimeError("adapter rows without a loaded adapter")
            yield
            return
        hook = partial(_inject_adapter_names, names=list(names))
        handles = [m.register_forward_pre_hook(hook, with_kwargs=True) for m in self._lora_modules()]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def forward_left_padded(self, sequences: list[list[int]], adapters: list[str], **model_kwargs: Any
                            ) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """One forward pass (inference mode) over ``sequences`` left-padded to one width, row ``j``
        through adapter ``adapters[j]``: (model output, ids, attention mask)."""
        ids, mask = left_pad(sequences, self.pad_id, self.device)
        with torch.inference_mode(), self.adapter_rows(adapters):
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions_of(mask), **model_kwargs)
        return out, ids, mask

    def _lora_modules(self) -> list[torch.nn.Module]:
        """The LoRA layers of the PEFT model, found again whenever adapters were loaded since."""
        if self._lora_layers[0] != self.adapters.loads:
            from peft.tuners.lora import LoraLayer

            self._lora_layers = (self.adapters.loads, [m for m in self.model.modules() if isinstance(m, LoraLayer)])
        return self._lora_layers[1]


def _inject_adapter_names(module, args, kwargs, names: list[str]):
    kwargs["adapter_names"] = names
    return args, kwargs
