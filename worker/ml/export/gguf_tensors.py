"""LLaMA weights from a Hugging Face checkpoint as the tensors llama.cpp expects.

Names come from the ``gguf`` package's own table (``get_tensor_name_map``). Q and K projections are
re-ordered: HF LLaMA checkpoints rotate the two halves of each head (``rotate_half``), llama.cpp's
RoPE rotates adjacent pairs, so llama.cpp's converter interleaves the rows of every head (K with the
key/value head count) and loaders such as transformers' GGUF reader undo it. Norms (1-D) stay f32 as
in llama.cpp's converter; matrices take the export dtype (q8_0 where a row splits into 32-blocks).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import gguf
import numpy as np

ExportDtype = Literal["f32", "f16", "q8_0"]

FILE_TYPES: dict[str, gguf.LlamaFileType] = {"f32": gguf.LlamaFileType.ALL_F32,
                                              "f16": gguf.LlamaFileType.MOSTLY_F16,
                                              "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}
SKIPPED_SUFFIXES = (".rotary_emb.inv_freq",)  # buffers some checkpoints carry; llama.cpp computes them


def interleave_rope_rows(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """Rows of each head go from [first half | second half] to pairs (r0, r_half, r1, r_half+1, ...)."""
    rows = weight.shape[0]
    half = rows // n_heads // 2
    return weight.reshape(n_heads, 2, half, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def encode(data: np.ndarray, dtype: ExportDtype) -> tuple[np.ndarray, gguf.GGMLQuantizationType]:
    """``data`` (f32) in the dtype it is stored with, and that type."""
    if data.ndim == 1 or dtype == "f32":
        return data.astype(np.float32), gguf.GGMLQuantizationType.F32
    if dtype == "q8_0" and data.shape[-1] % gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_0][0] == 0:
        qtype = gguf.GGMLQuantizationType.Q8_0
        return gguf.quants.quantize(data.astype(np.float32), qtype), qtype
    return data.astype(np.float16), gguf.GGMLQuantizationType.F16


def llama_tensors(state: Iterator[tuple[str, np.ndarray]], *, n_layers: int, n_heads: int, n_kv_heads: int,
                  tied_embeddings: bool) -> Iterator[tuple[str, np.ndarray]]:
    """(GGUF name, f32 array) for each HF LLaMA tensor, Q/K rows in llama.cpp's order."""
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layers)
    for hf_name, data in state:
        if hf_name.endswith(SKIPPED_SUFFIXES) or (tied_embeddings and hf_name == "lm_head.weight"):
            continue
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ValueError(f"tensor {hf_name!r} has no place in a llama GGUF file")
        if hf_name.endswith("self_attn.q_proj.weight"):
            data = interleave_rope_rows(data, n_heads)
        elif hf_name.endswith("self_attn.k_proj.weight"):
            data = interleave_rope_rows(data, n_kv_heads)
        yield name, data
