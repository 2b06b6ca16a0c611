"""Shared fixtures. The real base model is materialised once per machine into a cache dir."""
from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

MODELS_CACHE = Path(os.environ.get("LORAFLEET_TEST_MODELS_DIR", Path.home() / ".cache" / "lorafleet-test" / "models"))
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def models_cache() -> Path:
    return MODELS_CACHE


@pytest.fixture(scope="session")
def base_model_dir(models_cache) -> Path:
    """The real embedded base model (SmolLM2-135M-Instruct) as an HF checkpoint dir."""
    from worker.ml.base_models import materialise_builtin

    return materialise_builtin("smollm2-135m-instruct", models_cache)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data is not beside the checkout")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, base_model_dir) -> Path:
    """A tiny random LLaMA with the real tokenizer, for fast unit tests."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(base_model_dir)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    out = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


PG_ADMIN = os.environ.get("LORAFLEET_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("LORAFLEET_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _pg_url(db: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + db


@contextmanager
def migrated_database():
    """A new Postgres database at the head migration, dropped afterwards; yields its SQLAlchemy URL."""
    from models.migrate import upgrade_database

    name = f"lf_test_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    url = _pg_url(name).replace("postgresql://", "postgresql+psycopg://")
    try:
        upgrade_database(url)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_database():
    with migrated_database() as url:
        yield url


@pytest.fixture
def db_session_factory(pg_database):
    """A session factory on the session's migrated Postgres database."""
    from models.db import make_engine, make_sessionmaker

    engine = make_engine(pg_database)
    yield make_sessionmaker(engine)
    engine.dispose()
