"""Tiny random LoRA adapters written with plain peft (non-zero lora_B, so outputs change)."""
from __future__ import annotations

import json
from pathlib import Path

import torch


def make_random_adapter(base_dir: Path, out_dir: Path, seed: int, r: int = 4,
                        target_modules: tuple[str, ...] = ("q_proj", "v_proj"), scale: float = 0.5,
                        prompt_template: str | None = None) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=r, lora_alpha=2 * r, target_modules=list(target_modules),
                                            lora_dropout=0.0, task_type="CAUSAL_LM"))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * scale)
    model.save_pretrained(out_dir)
    if prompt_template:
        (Path(out_dir) / "lorafleet.json").write_text(json.dumps({"prompt_template": prompt_template}))
    return Path(out_dir)


# --- fixtures shared by the inference/scoring/batch tests (import them into a test module)
import pytest


@pytest.fixture(scope="session")
def tiny_adapters(tiny_llama_dir, tmp_path_factory) -> dict[str, Path]:
    """Two random adapters on the tiny LLaMA: A (q/v, alpaca) and B (all attention, chat)."""
    root = tmp_path_factory.mktemp("tiny-adapters")
    return {
        "A": make_random_adapter(tiny_llama_dir, root / "A", seed=1),
        "B": make_random_adapter(tiny_llama_dir, root / "B", seed=2, target_modules=("q_proj", "k_proj", "v_proj", "o_proj"),
                                 prompt_template="chat"),
    }


@pytest.fixture(scope="session")
def tiny_engine(tiny_llama_dir):
    from worker.ml.decoding.engine import InferenceEngine

    return InferenceEngine(tiny_llama_dir, device="cpu", dtype="float32")


def reference_model(base_dir: Path, adapter_dir: Path | None):
    """Plain transformers (+ peft) fp32 model and tokenizer: the ground truth for generation."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir))
    return model.eval(), tok


def reference_generate(base_dir: Path, adapter_dir: Path | None, prompt: str, max_new_tokens: int,
                       loaded=None) -> str:
    """Greedy generation of one prompt, alone, with HF generate (``loaded``: a reference_model pair)."""
    model, tok = loaded or reference_model(base_dir, adapter_dir)
    ids = tok(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(input_ids=ids, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                             pad_token_id=tok.eos_token_id)
    return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
