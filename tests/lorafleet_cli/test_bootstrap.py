"""``lorafleet models register``: a registered base model stores its shape for memory estimates."""
from __future__ import annotations

import json

import numpy as np
import pytest

from contracts.memory_estimate import ModelShape
from lorafleet_cli.bootstrap import read_model_shape, register_base_model
from models.db import make_engine, make_sessionmaker
from models.registry import BaseModelEntry
from tests.api.conftest import database_url, settings, template_database  # noqa: F401  (fixtures)

LLAMA = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000, "tie_word_embeddings": True}


def write_gguf(path, with_output: bool) -> None:
    """A tiny GGUF file with the header fields llama.cpp writes for a LLaMA model."""
    from gguf import GGUFWriter

    w = GGUFWriter(str(path), "llama")
    w.add_block_count(2)
    w.add_embedding_length(64)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_vocab_size(1000)
    w.add_tensor("token_embd.weight", np.zeros((1000, 64), dtype=np.float32))
    if with_output:
        w.add_tensor("output.weight", np.zeros((1000, 64), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_an_hf_dir_stores_its_config_shape(settings, tmp_path):  # noqa: F811
    model_dir = tmp_path / "llama"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps(LLAMA))
    register_base_model(settings, "tiny", model_dir, "a tiny llama")
    with make_sessionmaker(make_engine(settings.sqlalchemy_url))() as s:
        row = s.query(BaseModelEntry).filter_by(name="tiny").one()
    assert ModelShape.model_validate(row.shape) == ModelShape.from_hf_config(LLAMA)
    assert row.shape["n_params"] == 1000 * 64 + 2 * (64 * 64 * 2 + 2 * 64 * 32 + 3 * 64 * 128 + 2 * 64) + 64


@pytest.mark.parametrize("with_output", [False, True])
def test_a_gguf_file_stores_its_header_shape(tmp_path, with_output):
    path = tmp_path / "m.gguf"
    write_gguf(path, with_output)
    shape = ModelShape.model_validate(read_model_shape(path))
    assert shape == ModelShape.from_hf_config({**LLAMA, "tie_word_embeddings": not with_output})


def test_an_unreadable_model_stores_no_shape(tmp_path):
    model_dir = tmp_path / "broken"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{not json")
    assert read_model_shape(model_dir) == {}
    (tmp_path / "x.gguf").write_bytes(b"not a gguf file")
    assert read_model_shape(tmp_path / "x.gguf") == {}
