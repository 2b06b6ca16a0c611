"""The round trip of issue 15: an adapter on the real base (smollm2-135m-instruct) exported as GGUF loads back
in transformers (``gguf_file=``) and gives the same greedy answers as lorafleet serving the adapter, on 8
prompts, from the file's own tokenizer and embedded chat template; q8_0 loads and writes text."""
from __future__ import annotations

import pytest
import torch

from tests.worker.ml.decoding.engine_helpers import make_random_adapter

pytestmark = pytest.mark.slow
MAX_NEW_TOKENS = 20
TEMPLATE = "alpaca"
ROWS = [("Name a primary colour.", ""), ("What is 2 + 3?", ""), ("Give one word that rhymes with cat.", ""),
        ("Summarise the text in one sentence.", "The cat sat on the mat all day and did not move."),
        ("Translate to French.", "Good morning, friends."), ("Write a haiku about rain.", ""),
        ("List three fruits.", ""), ("Is the number odd or even?", "17")]


def messages(instruction: str, inp: str) -> list[dict]:
    """An Alpaca row as chat messages: the input as the system message, the instruction as the user turn."""
    return ([{"role": "system", "content": inp}] if inp else []) + [{"role": "user", "content": instruction}]


@pytest.fixture(scope="module")
def adapter_dir(base_model_dir, tmp_path_factory):
    """A LoRA on q/k/v/o with non-zero random A and B, recorded as trained on the Alpaca template."""
    return make_random_adapter(base_model_dir, tmp_path_factory.mktemp("gguf-adapter") / "adapter", seed=5, r=8,
                               target_modules=("q_proj", "k_proj", "v_proj", "o_proj"), scale=0.05,
                               prompt_template=TEMPLATE)


@pytest.fixture(scope="module")
def engine(base_model_dir):
    from worker.ml.decoding.engine import InferenceEngine

    return InferenceEngine(base_model_dir, device="cpu", dtype="float32")


def served(engine, adapter_dir, **target) -> list[tuple[list[int], str]]:
    """(prompt ids, greedy answer) of lorafleet's engine for every row."""
    from contracts.decoding import DecodeRequest

    reqs = [DecodeRequest(messages=messages(i, x), adapter_dir=adapter_dir, max_new_tokens=MAX_NEW_TOKENS,
                          temperature=0, **target) for i, x in ROWS]
    return [(engine.encode(r), res.text) for r, res in zip(reqs, engine.generate(reqs))]


@pytest.fixture(scope="module")
def adapter_answers(engine, adapter_dir):
    return served(engine, adapter_dir)


@pytest.fixture(scope="module")
def exported(base_model_dir, adapter_dir, tmp_path_factory):
    from worker.ml.export.adapter_gguf import export_adapter_gguf

    root = tmp_path_factory.mktemp("gguf-out")

    def export(dtype: str):
        path = root / f"adapter.{dtype}.gguf"
        if not path.exists():
            info = export_adapter_gguf(base_model_dir, adapter_dir, path, dtype=dtype, name="ft:test", work_dir=root)
            assert info["prompt_template"] == TEMPLATE and info["bytes"] == path.stat().st_size
        return path

    return export


def gguf_answers(path, rows=ROWS) -> list[tuple[list[int], str]]:
    """(prompt ids, greedy answer) of the file alone -- its tokenizer, its chat template, its weights -- in fp32,
    all rows in one left-padded batch."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    prompts = [tok.apply_chat_template(messages(i, x), add_generation_prompt=True, tokenize=True,
                                       return_dict=True)["input_ids"] for i, x in rows]
    width = max(map(len, prompts))
    ids = torch.tensor([[tok.eos_token_id] * (width - len(p)) + list(p) for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    with torch.no_grad():
        gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id)
    return [(list(p), tok.decode(g[width:], skip_special_tokens=True)) for p, g in zip(prompts, gen)]


def test_the_adapter_changes_the_answers(engine, adapter_answers):
    base = served(engine, None, prompt_template=TEMPLATE)
    assert [ids for ids, _ in base] == [ids for ids, _ in adapter_answers]
    differ = sum(b != a for (_, b), (_, a) in zip(base, adapter_answers))
    assert differ >= len(ROWS) // 2, (base, adapter_answers)


@pytest.mark.parametrize("dtype", ["f32", "f16"])
def test_exported_file_answers_as_lorafleet_serves_the_adapter(dtype, exported, adapter_answers):
    answers = gguf_answers(exported(dtype))
    for (ids, text), (served_ids, served_text) in zip(answers, adapter_answers):
        assert ids == served_ids  # the embedded chat template + vocab give the training prompt's tokens
        assert text == served_text


def test_q8_0_loads_and_writes_text(exported):
    import gguf

    path = exported("q8_0")
    kinds = {t.tensor_type.name for t in gguf.GGUFReader(path).tensors}
    assert kinds == {"Q8_0", "F32"}
    answers = gguf_answers(path, ROWS[:2])
    assert all(text.strip() for _, text in answers)
