"""Device and precision choice; the CPU path never imports bitsandbytes."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from contracts.configs import FinetuneHyperparameters
from worker.ml.training.devices import (
    cast_frozen_linear_weights,
    choose_precision,
    quantization_config,
    resolve_device,
)


def test_cpu_precisions():
    cpu = torch.device("cpu")
    assert choose_precision("fp32", cpu).autocast_dtype is None
    bf16 = choose_precision("bf16", cpu)
    assert bf16.autocast_dtype == torch.bfloat16 and bf16.frozen_dtype == torch.bfloat16 and bf16.name == "bf16"
    assert choose_precision("fp16", cpu).autocast_dtype is None
    assert choose_precision("auto", cpu).name in {"bf16", "fp32"}


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="CUDA"):
            resolve_device("cuda")


def test_quantization_is_ignored_on_cpu_without_importing_bitsandbytes():
    code = ("import sys, torch; from contracts.configs import FinetuneHyperparameters as H;"
            "from worker.ml.training.devices import quantization_config as q;"
            "assert q(H(load_in_4bit=True), torch.device('cpu')) is None;"
            "assert 'bitsandbytes' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert quantization_config(FinetuneHyperparameters(load_in_8bit=True), torch.device("cpu")) is None


def test_cast_frozen_linear_weights_keeps_head_embeddings_and_norms():
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=False))
    cast_frozen_linear_weights(model, torch.bfloat16)
    assert model.model.layers[0].self_attn.q_proj.weight.dtype == torch.bfloat16
    assert model.model.layers[0].mlp.down_proj.weight.dtype == torch.bfloat16
    assert model.lm_head.weight.dtype == torch.float32
    assert model.model.embed_tokens.weight.dtype == torch.float32
    assert model.model.norm.weight.dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_precision():
    p = choose_precision("auto", torch.device("cuda"))
    assert p.autocast_dtype in {torch.bfloat16, torch.float16}
