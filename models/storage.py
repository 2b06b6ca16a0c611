"""The artifact store: a root folder (local path or shared filesystem) with atomic writes.

Everything is written to a temporary name in the same folder and renamed into place, so a reader
never sees a half-written file or folder.

The database stores artifact paths **relative to the root** (``relative``): hosts of one deployment
may mount the shared store at different paths, and each resolves a stored path against its own
mount (``resolve``). Rows written before that hold absolute paths; ``resolve`` returns those as is.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO


class ArtifactStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, rel: str) -> Path:
        p = (self.root / rel).resolve()
        if self.root.resolve() not in p.parents and p != self.root.resolve():
            raise ValueError(f"path {rel!r} escapes the artifact store")
        return p

    def relative(self, path: Path | str) -> str:
        """``path`` (inside the store) as the POSIX path relative to the root that rows store; raises
        ``ValueError`` for a path outside the store."""
        rel = Path(path)
        if rel.is_absolute():
            try:
                rel = rel.relative_to(self.root)
            except ValueError:  # reached through another spelling of the mount (a symlink)
                rel = rel.resolve().relative_to(self.root.resolve())
        if ".." in rel.parts:
            raise ValueError(f"path {str(path)!r} escapes the artifact store")
        return rel.as_posix()

    def resolve(self, stored: str) -> Path:
        """A stored artifact path -> a path on this host: relative ones under this host's root; an
        absolute one (a row from before paths were stored relative) as it is. Never the root itself:
        an empty path raises ``ValueError`` (a caller may delete what this returns)."""
        if Path(stored).is_absolute():
            return Path(stored)
        if not stored or Path(stored) == Path("."):
            raise ValueError("empty artifact path")
        return self.path(stored)

    def write_stream(self, rel: str, src: BinaryIO, max_bytes: int, chunk: int = 1 << 20) -> tuple[int, str]:
        """Copy a stream in; raises ``ValueError`` (and stores nothing) past ``max_bytes``."""
        dest = self.path(rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".upload-", dir=dest.parent)
        size, digest = 0, hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out:
                while block := src.read(chunk):
                    size += len(block)
                    if size > max_bytes:
                        raise ValueError(f"file is larger than the limit of {max_bytes} bytes")
                    digest.update(block)
                    out.write(block)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return size, digest.hexdigest()

    def write_bytes(self, rel: str, data: bytes) -> Path:
        dest = self.path(rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=dest.parent)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, dest)
        return dest

    def delete(self, rel: str) -> None:
        p = self.path(rel)
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
