"""Direct-database operations for bootstrapping: migrate, first admin, users, base models."""
from __future__ import annotations

import json
import os
from contextlib import nullcontext
from pathlib import Path

from filelock import FileLock
from sqlalchemy import text

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


# Postgres advisory lock key serialising the first-admin bootstrap of every host ("lfad").
ADMIN_BOOTSTRAP_LOCK = 0x6C666164


def ensure_admin(settings: Settings) -> Path | None:
    """One admin per deployment, made by whichever host bootstraps first; returns this host's key file.

    Hosts starting together are serialised (a Postgres advisory lock; on SQLite, one host's file, a lock
    file beside it). The key goes to ``DATA_DIR/admin.key`` (mode 0600) and to ``admin.key`` in the
    shared store (``Settings.shared_state_dir``), where every later host finds it and copies it into its
    own data dir. A host that finds an admin but no key it can read (no shared store) makes no second
    admin and returns None: ``lorafleet users create --admin`` makes another on purpose.
    """
    key_file, shared_key = settings.data_dir / "admin.key", settings.shared_state_dir / "admin.key"
    engine = make_engine(settings.sqlalchemy_url)
    try:
        with _bootstrap_lock(settings), session_scope(make_sessionmaker(engine)) as s:
            if s.get_bind().dialect.name == "postgresql":
                s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADMIN_BOOTSTRAP_LOCK})
            if s.query(User).filter_by(is_admin=True).first() is None:
                name = "admin" if s.query(User).filter_by(name="admin").first() is None else f"admin-{os.getpid()}"
                key = create_user(session=s, name=name, is_admin=True)[1]
                for path in {shared_key, key_file}:  # written before the commit: never an admin without a key
                    _write_key(path, key)
                return key_file
    finally:
        engine.dispose()
    if key_file.exists():
        return key_file
    if shared_key.exists():
        _write_key(key_file, shared_key.read_text().strip())
        return key_file
    return None


def _bootstrap_lock(settings: Settings):
    if settings.sqlalchemy_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return FileLock(str(settings.data_dir / ".admin-bootstrap.lock"))
    return nullcontext()


def _write_key(path: Path, key: str) -> None:
    """A 0600 file that appears whole (temp name, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


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
