"""Append-only JSONL ledgers of finished batch lines: what a restarted worker must not redo.

``output.jsonl`` holds the successful lines, ``errors.jsonl`` the failed ones. Lines are written as
they finish and made durable (flush + fsync) once per chunk by ``sync()``; on open, a torn last line
(a worker killed mid-write) is cut off, and the ``custom_id`` of every whole line counts as done.
"""
from __future__ import annotations

import json
import os
from pathlib import Path


class LineLedger:
    def __init__(self, work_dir: Path) -> None:
        self.output_path, self.error_path = work_dir / "output.jsonl", work_dir / "errors.jsonl"
        self.done: set[str] = set()
        self.completed = self.failed = 0
        self.prompt_tokens = self.completion_tokens = 0
        for path, ok in ((self.output_path, True), (self.error_path, False)):
            for line in _load(path):
                self._count(line, ok)
        self.resumed = len(self.done)
        # long-lived append handles, closed by close()
        self._files = {True: open(self.output_path, "a", encoding="utf-8"),  # noqa: SIM115
                       False: open(self.error_path, "a", encoding="utf-8")}  # noqa: SIM115
        self._dirty = False

    def write(self, line: dict) -> None:
        ok = line.get("error") is None
        self._files[ok].write(json.dumps(line, ensure_ascii=False) + "\n")
        self._dirty = True
        self._count(line, ok)

    def sync(self) -> bool:
        """Make every written line durable; returns whether there was anything to sync."""
        if not self._dirty:
            return False
        for f in self._files.values():
            f.flush()
            os.fsync(f.fileno())
        self._dirty = False
        return True

    def close(self) -> None:
        self.sync()
        for f in self._files.values():
            f.close()

    def _count(self, line: dict, ok: bool) -> None:
        self.done.add(line["custom_id"])
        if ok:
            self.completed += 1
            usage = ((line.get("response") or {}).get("body") or {}).get("usage") or {}
            self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            self.completion_tokens += int(usage.get("completion_tokens") or 0)
        else:
            self.failed += 1


def _load(path: Path) -> list[dict]:
    """Whole lines of a ledger; truncates the file after the last complete, parseable line."""
    if not path.exists():
        return []
    data = path.read_bytes()
    lines, good_end = [], 0
    for raw in data.split(b"\n")[:-1]:  # the piece after the last newline is torn (or empty)
        try:
            obj = json.loads(raw)
        except ValueError:
            break
        if not isinstance(obj, dict) or not isinstance(obj.get("custom_id"), str):
            break
        lines.append(obj)
        good_end += len(raw) + 1
    if good_end != len(data):
        with open(path, "r+b") as f:
            f.truncate(good_end)
    return lines
