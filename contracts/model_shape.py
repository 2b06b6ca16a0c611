"""A decoder-only transformer's shape: what memory estimates need to know about a base model.

Read from an HF ``config.json`` (LLaMA / Mistral / Qwen2 keys, GPT-2's as a fallback) or a GGUF
header's ``<arch>.*`` metadata, and stored as JSON on the base model's registry row
(``BaseModelEntry.shape``). ``contracts.memory_estimate`` turns it into bytes. Stdlib + pydantic.
"""
from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ModelShape(BaseModel):
    """Sizes of a LLaMA-style decoder. ``head_dim`` 0 means ``hidden_size // n_heads`` (most models)."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    n_params: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    n_layers: int = Field(gt=0)
    n_heads: int = Field(gt=0)
    n_kv_heads: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    tie_word_embeddings: bool = False
    head_dim: int = Field(0, ge=0)
    attention_bias: bool = False

    @property
    def head_dim_or_default(self) -> int:
        return self.head_dim or self.hidden_size // self.n_heads

    def module_dims(self, name: str) -> tuple[int, int]:
        """(in, out) features of a linear module by its leaf name; an unknown name counts as hidden x hidden."""
        h, i, d = self.hidden_size, self.intermediate_size, self.head_dim_or_default
        q, kv = self.n_heads * d, self.n_kv_heads * d
        dims = {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h), "lm_head": (h, self.vocab_size),
                "qkv_proj": (h, q + 2 * kv), "gate_up_proj": (h, 2 * i),  # phi3
                "c_attn": (h, 3 * h), "c_fc": (h, i)}  # gpt2 (its c_proj is both h->h and i->h: default)
        return dims.get(name, (h, h))

    @property
    def linear_params(self) -> int:
        """Parameters in the decoder layers' linear modules: what 8-bit / 4-bit loading quantises."""
        return self.n_layers * layer_linear_params(self.hidden_size, self.intermediate_size, self.n_heads,
                                                   self.n_kv_heads, self.head_dim_or_default)

    @classmethod
    def from_hf_config(cls, config: Mapping[str, Any]) -> ModelShape:
        """From a ``config.json`` dict; ``n_params`` computed from the shape unless the config gives it."""
        h = int(_first(config, "hidden_size", "n_embd", "d_model"))
        heads = int(_first(config, "num_attention_heads", "n_head"))
        fields = {
            "hidden_size": h,
            "intermediate_size": int(_first(config, "intermediate_size", "n_inner", default=None) or 4 * h),
            "n_layers": int(_first(config, "num_hidden_layers", "n_layer")),
            "n_heads": heads,
            "n_kv_heads": int(config.get("num_key_value_heads") or heads),
            "vocab_size": int(config["vocab_size"]),
            "tie_word_embeddings": bool(config.get("tie_word_embeddings", config.get("model_type") == "gpt2")),
            "head_dim": int(config.get("head_dim") or 0),
            "attention_bias": bool(config.get("attention_bias", config.get("model_type") == "qwen2")),
        }
        given = config.get("n_params") or config.get("num_parameters")
        return cls(n_params=int(given) if given else count_params(**fields), **fields)

    @classmethod
    def from_gguf_metadata(cls, metadata: Mapping[str, Any], tensor_names: Collection[str] = ()) -> ModelShape:
        """From a GGUF header's fields (``general.architecture``, ``<arch>.embedding_length``, ...); the
        embeddings are tied when the file has no ``output.weight`` tensor (llama.cpp's naming)."""
        arch = str(metadata.get("general.architecture", "llama"))

        def get(key: str, default: Any = None) -> Any:
            return metadata.get(f"{arch}.{key}", default)

        vocab = get("vocab_size") or len(metadata.get("tokenizer.ggml.tokens") or ())
        heads = int(get("attention.head_count"))
        config = {
            "hidden_size": get("embedding_length"), "intermediate_size": get("feed_forward_length"),
            "num_hidden_layers": get("block_count"), "num_attention_heads": heads,
            "num_key_value_heads": get("attention.head_count_kv") or heads, "vocab_size": vocab,
            "head_dim": get("attention.key_length") or 0, "model_type": arch,
            "tie_word_embeddings": bool(tensor_names) and "output.weight" not in tensor_names,
        }
        return cls.from_hf_config(config)


def layer_linear_params(h: int, i: int, heads: int, kv_heads: int, head_dim: int) -> int:
    """q, k, v, o projections and the gated MLP's three (LLaMA's layout)."""
    q, kv = heads * head_dim, kv_heads * head_dim
    return h * q + 2 * h * kv + q * h + 3 * h * i


def count_params(*, hidden_size: int, intermediate_size: int, n_layers: int, n_heads: int, n_kv_heads: int,
                 vocab_size: int, tie_word_embeddings: bool, head_dim: int = 0, attention_bias: bool = False) -> int:
    """Parameters of a LLaMA-style model: embeddings (+ an untied head), per layer the attention and
    gated-MLP linears, q/k/v biases where the model has them, two RMSNorms, and the final norm."""
    d = head_dim or hidden_size // n_heads
    per_layer = layer_linear_params(hidden_size, intermediate_size, n_heads, n_kv_heads, d) + 2 * hidden_size
    if attention_bias:
        per_layer += (n_heads + 2 * n_kv_heads) * d
    embeddings = vocab_size * hidden_size * (1 if tie_word_embeddings else 2)
    return embeddings + n_layers * per_layer + hidden_size


def _first(config: Mapping[str, Any], *keys: str, default: Any = KeyError) -> Any:
    for key in keys:
        if config.get(key) is not None:
            return config[key]
    if default is KeyError:
        raise KeyError(f"config has none of {list(keys)}")
    return default
