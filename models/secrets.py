"""Secrets at rest (e.g. a generation job's teacher API key): Fernet-encrypted with the server key.

The key comes from ``LORAFLEET_SECRET_KEY`` or, failing that, ``DATA_DIR/secret.key`` (created once,
mode 0600). Encrypted values are what job params hold; plaintext exists only in the worker's memory.
"""
from __future__ import annotations

import base64
import hashlib
import os

from cryptography.fernet import Fernet, InvalidToken
from filelock import FileLock

from models.settings import Settings


def _fernet(settings: Settings) -> Fernet:
    if settings.secret_key:
        raw = hashlib.sha256(settings.secret_key.encode()).digest()
        return Fernet(base64.urlsafe_b64encode(raw))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / "secret.key"
    with FileLock(str(path) + ".lock"):
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(Fernet.generate_key())
    return Fernet(path.read_bytes().strip())


def encrypt_secret(settings: Settings, plaintext: str) -> str:
    return _fernet(settings).encrypt(plaintext.encode()).decode()


def decrypt_secret(settings: Settings, token: str) -> str:
    try:
        return _fernet(settings).decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError("stored secret cannot be decrypted with this server's key (LORAFLEET_SECRET_KEY)") from None
