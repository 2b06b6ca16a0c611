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


def test_relative_and_resolve_round_trip(tmp_path):
    store = ArtifactStore(tmp_path / "store")
    folder = store.root / "jobs" / "ftjob-1" / "adapter"
    assert store.relative(folder) == "jobs/ftjob-1/adapter"
    assert store.relative("jobs/ftjob-1/adapter") == "jobs/ftjob-1/adapter"
    assert store.resolve(store.relative(folder)) == folder.resolve()
    with pytest.raises(ValueError):
        store.relative(tmp_path / "elsewhere" / "adapter")
    with pytest.raises(ValueError, match="escapes"):
        store.relative("../elsewhere")


def test_a_row_written_through_one_mount_resolves_through_another(tmp_path):
    """Host A mounts the store at one path, host B at another (here: a symlink to the same folder)."""
    from models.settings import Settings

    shared = tmp_path / "nfs" / "lorafleet"
    (shared / "jobs" / "ftjob-1" / "adapter").mkdir(parents=True)
    (shared / "jobs" / "ftjob-1" / "adapter" / "adapter_config.json").write_text("{}")
    (tmp_path / "mnt").mkdir()
    (tmp_path / "mnt" / "artifacts").symlink_to(shared)
    host_a = Settings(LORAFLEET_DATA_DIR=str(tmp_path / "a"), LORAFLEET_ARTIFACT_URI=f"file://{shared}")
    host_b = Settings(LORAFLEET_DATA_DIR=str(tmp_path / "b"), LORAFLEET_ARTIFACT_URI=str(tmp_path / "mnt" / "artifacts"))
    stored = ArtifactStore(host_a.artifacts_dir).relative(host_a.artifacts_dir / "jobs" / "ftjob-1" / "adapter")
    assert stored == "jobs/ftjob-1/adapter"
    on_b = ArtifactStore(host_b.artifacts_dir).resolve(stored)
    assert (on_b / "adapter_config.json").read_text() == "{}"
    # B may also name the folder through its own mount and gets the same stored form.
    assert ArtifactStore(host_b.artifacts_dir).relative(host_b.artifacts_dir / "jobs/ftjob-1/adapter") == stored
    assert ArtifactStore(host_a.artifacts_dir).relative(on_b) == stored


def test_old_absolute_rows_still_resolve_and_empty_ones_never_name_the_root(tmp_path):
    store = ArtifactStore(tmp_path / "store")
    legacy = tmp_path / "old-data" / "artifacts" / "jobs" / "j" / "adapter"
    assert store.resolve(str(legacy)) == legacy
    for empty in ("", "."):
        with pytest.raises(ValueError, match="empty"):
            store.resolve(empty)
