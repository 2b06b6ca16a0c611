"""Direct-database operations for bootstrapping: migrate, first admin, users, base models."""
from __future__ import annotations

import json
import os
from pathlib import Path

from contracts.model_shape import ModelShape
from models.crud.users import create_user
from models.db import make_engine, make_sessionmaker, session_scope
from models.migrate import upgrade_database
from models.registry import BaseModelEntry
from models.settings import Settings
from models.user import User


def migrate(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_database(settings.sqlalchemy_url)


def _factory(settings: Settings):
    return make_sessionmaker(make_engine(settings.sqlalchemy_url))


def create_user_direct(settings: Settings, name: str, is_admin: bool) -> tuple[str, str]:
    with session_scope(_factory(settings)) as s:
        user, key = create_user(session=s, name=name, is_admin=is_admin)
        return user.id, key


def ensure_admin(settings: Settings) -> Path:
    """On first start, create an admin and write its key to DATA_DIR/admin.key (mode 0600)."""
    key_file = settings.data_dir / "admin.key"
    with session_scope(_factory(settings)) as s:
        has_admin = s.query(User).filter_by(is_admin=True).first() is not None
        if has_admin and key_file.exists():
            return key_file
        name = "admin" if s.query(User).filter_by(name="admin").first() is None else f"admin-{os.getpid()}"
        _, key = create_user(session=s, name=name, is_admin=True)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    os.chmod(key_file, 0o600)
    return key_file


def register_base_model(settings: Settings, name: str, path: Path, description: str) -> None:
    if not ((path / "config.json").exists() or (path.suffix == ".gguf" and path.is_file())):
        raise SystemExit(f"{path} is neither an HF checkpoint dir (config.json) nor a .gguf file")
    with session_scope(_factory(settings)) as s:
        row = s.query(BaseModelEntry).filter_by(name=name).one_or_none() or BaseModelEntry(name=name, source="")
        row.source, row.description = str(path), description
        row.shape = read_model_shape(path)
        s.add(row)


def read_model_shape(path: Path) -> dict:
    """The model's ``ModelShape`` as JSON, for memory estimates: from an HF dir's ``config.json``, or a
    .gguf file's header with the ``gguf`` package when it is installed; {} when it cannot be read."""
    try:
        if path.is_dir():
            return ModelShape.from_hf_config(json.loads((path / "config.json").read_text())).model_dump()
        return _gguf_shape(path)
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _gguf_shape(path: Path) -> dict:
    try:
        from gguf import GGUFReader
    except ImportError:
        return {}
    reader = GGUFReader(str(path))
    arch_field = reader.fields.get("general.architecture")
    arch = arch_field.contents() if arch_field is not None else "llama"
    metadata = {name: field.contents() for name, field in reader.fields.items()
                if name == "general.architecture" or name.startswith(f"{arch}.")}
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    if tokens is not None:
        metadata.setdefault(f"{arch}.vocab_size", len(tokens.data))
    return ModelShape.from_gguf_metadata(metadata, [t.name for t in reader.tensors]).model_dump()
