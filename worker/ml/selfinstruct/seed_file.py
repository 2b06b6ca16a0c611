"""Seed-task files as users upload them: JSONL, one Self-Instruct task per line.

``parse_seed_file`` is what both the API (at submit, to refuse a bad file with every bad line named)
and the worker (to load the seeds) call, so the two can never disagree about a file.
"""
from __future__ import annotations

import json
import re

from worker.ml.records import LineError
from worker.ml.selfinstruct.seeds import validate_seed_tasks

MAX_REPORTED_ERRORS = 100
_TASK_PREFIX = re.compile(r"^seed task (\d+): ")


class SeedFileError(ValueError):
    """The file is not a valid seed-task file; ``errors`` name each bad line (1-based)."""

    def __init__(self, errors: list[LineError]):
        self.errors = errors
        super().__init__("; ".join(f"line {e.line}: {e.message}" if e.line else e.message for e in errors[:5]))


def _task_error(line: int, exc: ValueError) -> LineError:
    return LineError(line, "invalid_seed_task", _TASK_PREFIX.sub("", str(exc)))


def parse_seed_file(data: bytes, max_line_bytes: int = 1 << 20) -> list[dict]:
    """Parse and validate a seed-task JSONL file; returns the normalised tasks or raises ``SeedFileError``."""
    tasks: list[dict] = []
    lines: list[int] = []
    errors: list[LineError] = []
    for n, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        if len(raw) > max_line_bytes:
            errors.append(LineError(n, "line_too_long", f"line is {len(raw)} bytes, over the limit of {max_line_bytes}"))
            continue
        try:
            obj = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            errors.append(LineError(n, "invalid_encoding", "line is not valid UTF-8"))
            continue
        except json.JSONDecodeError as exc:
            errors.append(LineError(n, "invalid_json", f"line is not valid JSON: {exc.msg} (column {exc.colno})"))
            continue
        try:  # each task on its own first, so every bad line is reported
            validate_seed_tasks([obj])
        except ValueError as exc:
            errors.append(_task_error(n, exc))
            continue
        tasks.append(obj)
        lines.append(n)
    if errors:
        raise SeedFileError(errors[:MAX_REPORTED_ERRORS])
    if not tasks:
        raise SeedFileError([LineError(0, "empty_file", "the seed file has no tasks")])
    try:  # what only the whole file can get wrong: duplicate ids
        return validate_seed_tasks(tasks)
    except ValueError as exc:
        match = _TASK_PREFIX.match(str(exc))
        line = lines[int(match.group(1)) - 1] if match else 0
        raise SeedFileError([_task_error(line, exc)]) from None
