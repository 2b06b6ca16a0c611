"""Secrets at rest (e.g. a generation job's teacher API key): Fernet-encrypted with the server key.

The key comes from ``LORAFLEET_SECRET_KEY`` or, failing that, ``secret.key`` in the settings'
``shared_state_dir`` (created once, mode 0600): in the shared artifact store when one is configured,
so every host of a deployment reads the same key, else in the data dir. A host that made its own
``DATA_DIR/secret.key`` before the store was shared hands that key to the store when the store has
none yet, so the secrets it encrypted stay readable. Encrypted values are what job params hold;
plaintext exists only in the worker's memory.
"""
from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from filelock import FileLock

from models.settings import Settings


def _fernet(settings: Settings) -> Fernet:
    if settings.secret_key:
        raw = hashlib.sha256(settings.secret_key.encode()).digest()
        return Fernet(base64.urlsafe_b64encode(raw))
    return Fernet(secret_key_file(settings).read_bytes().strip())


def secret_key_file(settings: Settings) -> Path:
    """The generated key's file, made once (exclusive create under a lock: two hosts starting together
    on one shared store end up with one key)."""
    path = settings.shared_state_dir / "secret.key"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    legacy = settings.data_dir / "secret.key"
    with FileLock(str(path) + ".lock"):
        if not path.exists():
            key = legacy.read_bytes() if legacy != path and legacy.exists() else Fernet.generate_key()
            _create_exclusive(path, key)
    return path


def _create_exclusive(path: Path, data: bytes) -> None:
    """Write ``data`` to a new 0600 file; the file appears whole (temp name, then a hard link that fails
    if another process got there first: then its key is kept)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.strip() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)


def encrypt_secret(settings: Settings, plaintext: str) -> str:
    return _fernet(settings).encrypt(plaintext.encode()).decode()


def decrypt_secret(settings: Settings, token: str) -> str:
    try:
        return _fernet(settings).decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError("stored secret cannot be decrypted with this server's key (LORAFLEET_SECRET_KEY)") from None
