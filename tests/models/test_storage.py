"""The artifact store writes atomically (a reader never sees half a file) and stays inside its root."""
from __future__ import annotations

import hashlib
import io

import pytest

from models.storage import ArtifactStore


def leftovers(folder) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_stream_write_returns_size_and_sha(tmp_path):
    store = ArtifactStore(tmp_path)
    size, sha = store.write_stream("files/u/f1", io.BytesIO(b"hello"), max_bytes=10, chunk=2)
    assert (size, sha) == (5, hashlib.sha256(b"hello").hexdigest())
    assert store.path("files/u/f1").read_bytes() == b"hello"
    assert leftovers(tmp_path / "files/u") == []


def test_oversize_stream_stores_nothing_and_keeps_the_old_file(tmp_path):
    store = ArtifactStore(tmp_path)
    store.write_bytes("f", b"old")
    with pytest.raises(ValueError, match="larger than the limit"):
        store.write_stream("f", io.BytesIO(b"x" * 100), max_bytes=10, chunk=7)
    assert store.path("f").read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_write_bytes_replaces_in_one_step(tmp_path):
    store = ArtifactStore(tmp_path)
    store.write_bytes("a/b.json", b"1")
    assert store.write_bytes("a/b.json", b"2").read_bytes() == b"2"
    assert leftovers(tmp_path / "a") == []


def test_paths_cannot_escape_the_root(tmp_path):
    store = ArtifactStore(tmp_path / "root")
    with pytest.raises(ValueError, match="escapes"):
        store.path("../outside")
    with pytest.raises(ValueError):
        store.write_bytes("/etc/passwd", b"x")


def test_delete_file_and_folder(tmp_path):
    store = ArtifactStore(tmp_path)
    store.write_bytes("d/x", b"1")
    store.write_bytes("f", b"1")
    store.delete("d")
    store.delete("f")
    store.delete("never-existed")
    assert not (tmp_path / "d").exists() and not (tmp_path / "f").exists()
