"""Append-only JSONL ledgers of finished work: what a restarted worker must not redo.

``ResultLedger`` is one file of lines keyed by a field (eval generations use it directly). Lines
are written as they finish and made durable (flush + fsync) once per chunk by ``sync()``; on open,
a torn last line (a worker killed mid-write) is cut off, and the key of every whole line counts as
done. ``LineLedger`` is a batch's pair of them: ``output.jsonl`` holds the successful lines,
``errors.jsonl`` the failed ones, with the batch's counts and token usage.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path


class ResultLedger:
    """One append-only JSONL file keyed by ``key``; ``on_load(line)`` sees every whole line on open."""

    def __init__(self, path: Path, key: str, on_load: Callable[[dict], None] | None = None) -> None:
        self.path, self.key = path, key
        self.done: set[str] = set()
        for line in load_whole_lines(path, key):
            self.done.add(line[key])
            if on_load is not None:
                on_load(line)
        self.resumed = len(self.done)
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - long-lived, closed by close()
        self._dirty = False

    def write(self, line: dict) -> None:
        self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._dirty = True
        self.done.add(line[self.key])

    def sync(self) -> bool:
        """Make every written line durable; returns whether there was anything to sync."""
        if not self._dirty:
            return False
        self._file.flush()
        os.fsync(self._file.fileno())
        self._dirty = False
        return True

    def close(self) -> None:
        self.sync()
        self._file.close()


class LineLedger:
    """A batch's finished lines: successes in ``output.jsonl``, failures in ``errors.jsonl``."""

    def __init__(self, work_dir: Path) -> None:
        self.output_path, self.error_path = work_dir / "output.jsonl", work_dir / "errors.jsonl"
        self.completed = self.failed = 0
        self.prompt_tokens = self.completion_tokens = 0
        self._files = {ok: ResultLedger(path, "custom_id", on_load=lambda line, ok=ok: self._count(line, ok))
                       for ok, path in ((True, self.output_path), (False, self.error_path))}
        self.resumed = self.completed + self.failed

    @property
    def done(self) -> set[str]:
        return self._files[True].done | self._files[False].done

    def write(self, line: dict) -> None:
        ok = line.get("error") is None
        self._files[ok].write(line)
        self._count(line, ok)

    def sync(self) -> bool:
        """Make every written line durable; returns whether there was anything to sync."""
        synced = [f.sync() for f in self._files.values()]  # both files, no short-circuit
        return any(synced)

    def close(self) -> None:
        for f in self._files.values():
            f.close()

    def _count(self, line: dict, ok: bool) -> None:
        if ok:
            self.completed += 1
            usage = ((line.get("response") or {}).get("body") or {}).get("usage") or {}
            self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            self.completion_tokens += int(usage.get("completion_tokens") or 0)
        else:
            self.failed += 1


def load_whole_lines(path: Path, key: str) -> list[dict]:
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
        if not isinstance(obj, dict) or not isinstance(obj.get(key), str):
            break
        lines.append(obj)
        good_end += len(raw) + 1
    if good_end != len(data):
        with open(path, "r+b") as f:
            f.truncate(good_end)
    return lines
