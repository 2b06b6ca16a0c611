"""One ``.gguf`` file from a (merged) Hugging Face LLaMA checkpoint, written with ``gguf.GGUFWriter``:
the model's hyperparameters, its tokenizer, the chat template to embed, and the weights in f32, f16 or q8_0.

The file is written under a temporary name and renamed, so a half-written export never appears.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import gguf
import numpy as np

from worker.ml.export.gguf_tensors import FILE_TYPES, ExportDtype, encode, llama_tensors
from worker.ml.export.gguf_vocab import gguf_vocab, write_vocab

ARCH = "llama"


def _rope_theta(config) -> float:
    params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if params.get("rope_type", params.get("type", "default")) != "default":
        raise ValueError("only LLaMA models with plain RoPE (no rope scaling) can be exported to GGUF")
    return float(params.get("rope_theta", getattr(config, "rope_theta", 10000.0)))


def _state(model_dir: Path) -> Iterator[tuple[str, np.ndarray]]:
    """Every tensor of the checkpoint's safetensors files, as f32 numpy arrays, one at a time."""
    from safetensors import safe_open

    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{model_dir} has no .safetensors weights")
    for f in files:
        with safe_open(str(f), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - a safetensors handle is not iterable
                yield key, handle.get_tensor(key).float().numpy()


def write_header(writer: gguf.GGUFWriter, config, name: str, dtype: ExportDtype) -> None:
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads or config.num_attention_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(_rope_theta(config))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(FILE_TYPES[dtype])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def write_gguf(model_dir: Path, out_path: Path, *, dtype: ExportDtype, chat_template: str, name: str) -> Path:
    """Write ``out_path`` from the HF LLaMA checkpoint in ``model_dir``; returns ``out_path``."""
    from transformers import AutoConfig, AutoTokenizer

    if dtype not in FILE_TYPES:
        raise ValueError(f"dtype must be one of {sorted(FILE_TYPES)}, not {dtype!r}")
    config = AutoConfig.from_pretrained(str(model_dir))
    if config.model_type != ARCH:
        raise ValueError(f"only LLaMA-architecture models can be exported to GGUF (this one is {config.model_type})")
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        raise ValueError("LLaMA models with attention or MLP biases cannot be exported to GGUF")
    vocab = gguf_vocab(AutoTokenizer.from_pretrained(str(model_dir)), config.vocab_size)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.parent / f".tmp-{uuid.uuid4().hex[:8]}-{out_path.name}"
    writer = gguf.GGUFWriter(tmp, ARCH)
    try:
        write_header(writer, config, name, dtype)
        write_vocab(writer, vocab)
        writer.add_chat_template(chat_template)
        tensors = llama_tensors(_state(model_dir), n_layers=config.num_hidden_layers,
                                n_heads=config.num_attention_heads,
                                n_kv_heads=config.num_key_value_heads or config.num_attention_heads,
                                tied_embeddings=bool(config.tie_word_embeddings))
        for tensor_name, data in tensors:
            stored, qtype = encode(data, dtype)
            writer.add_tensor(tensor_name, stored, raw_dtype=qtype if qtype == gguf.GGMLQuantizationType.Q8_0 else None)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        tmp.replace(out_path)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return out_path
