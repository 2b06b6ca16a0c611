"""A byte-level BPE tokenizer (GPT-2 style, as SmolLM2 and most LLaMA-architecture chat models use) as the
``tokenizer.ggml.*`` fields llama.cpp reads.

Built from the tokenizer the model is served with (its ``tokenizer.json``), so a base registered as a
Hugging Face folder and one materialised from a GGUF file go the same way: tokens by id in the
byte-level alphabet, their types (special added tokens are CONTROL, other added ones USER_DEFINED),
the merges in rank order, the special token ids and whether a BOS/EOS is added to every text.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import gguf

# tokenizer.json pre-tokenizers -> llama.cpp's name for the same split (``tokenizer.ggml.pre``).
_GPT2 = "gpt2"
_SMOLLM = "smollm"


@dataclass
class GGUFVocab:
    tokens: list[str]
    token_types: list[int]
    merges: list[str]
    pre: str
    special_ids: dict[str, int]  # bos / eos / unk / pad -> id, for those the tokenizer has
    add_bos: bool
    add_eos: bool


def _pre_tokenizer_name(pre: dict | None) -> str:
    """llama.cpp's pre-tokenizer type for the split ``tokenizer.json`` describes."""
    if pre is None:
        raise ValueError("the tokenizer has no pre-tokenizer; only byte-level BPE tokenizers can be exported")
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return _GPT2
    parts = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else []
    kinds = [p.get("type") for p in parts]
    if kinds == ["Digits", "ByteLevel"] and parts[0].get("individual_digits") and parts[1].get("use_regex", True):
        return _SMOLLM  # digits one by one, then GPT-2's split (SmolLM / StarCoder tokenizers)
    raise ValueError(f"unsupported pre-tokenizer for GGUF export: {json.dumps(pre)[:200]}")


def _merges(model: dict) -> list[str]:
    return [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]


def _added_specials(tokenizer: Any) -> tuple[bool, bool]:
    """(BOS put in front, EOS put at the end) when the tokenizer encodes a text with its special tokens."""
    plain = tokenizer("a", add_special_tokens=False).input_ids
    full = tokenizer("a", add_special_tokens=True).input_ids
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    add_bos = bos is not None and full[:1] == [bos] and plain[:1] != [bos]
    add_eos = eos is not None and full[-1:] == [eos] and plain[-1:] != [eos]
    return add_bos, add_eos


def gguf_vocab(tokenizer: Any, vocab_size: int) -> GGUFVocab:
    """The ``tokenizer.ggml.*`` content of a fast HF tokenizer for a model with ``vocab_size`` embedding rows."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model = spec["model"]
    if model.get("type") != "BPE":
        raise ValueError(f"only byte-level BPE tokenizers can be exported to GGUF (this one is {model.get('type')})")
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = {i: tok for i, tok in tokenizer.added_tokens_decoder.items()}
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:  # embedding rows past the tokenizer: placeholders, as llama.cpp's converter writes
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.USER_DEFINED)
        elif i in added:
            tokens.append(added[i].content)
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
    special = {name: getattr(tokenizer, f"{name}_token_id") for name in ("bos", "eos", "unk", "pad")}
    add_bos, add_eos = _added_specials(tokenizer)
    return GGUFVocab(tokens=tokens, token_types=[int(t) for t in types], merges=_merges(model),
                     pre=_pre_tokenizer_name(spec.get("pre_tokenizer")),
                     special_ids={k: v for k, v in special.items() if v is not None and v < vocab_size},
                     add_bos=add_bos, add_eos=add_eos)


def write_vocab(writer: gguf.GGUFWriter, vocab: GGUFVocab) -> None:
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.token_types)
    writer.add_token_merges(vocab.merges)
    adders = {"bos": writer.add_bos_token_id, "eos": writer.add_eos_token_id, "unk": writer.add_unk_token_id,
              "pad": writer.add_pad_token_id}
    for name, token_id in vocab.special_ids.items():
        adders[name](token_id)
    writer.add_add_bos_token(vocab.add_bos)
    writer.add_add_eos_token(vocab.add_eos)
