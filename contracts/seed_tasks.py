"""Seed-task files as users upload them: JSONL, one Self-Instruct task per line.

``parse_seed_file`` is what both the API (at submit, to refuse a bad file with every bad line named)
and the worker (to load the seeds) call, so the two can never disagree about a file.
"""
from __future__ import annotations

import json
import re

from contracts.records import LineError

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


def validate_seed_tasks(tasks: list[dict]) -> list[dict]:
    """Check and normalise seed tasks; raise ``ValueError`` naming the first bad one (1-based)."""
    if not tasks:
        raise ValueError("no seed tasks")
    out, ids = [], set()
    for n, task in enumerate(tasks, start=1):
        if not isinstance(task, dict):
            raise ValueError(f"seed task {n}: must be an object")  # noqa: TRY004 - one error type for bad seeds
        instruction = task.get("instruction")
        if not isinstance(instruction, str) or not instruction.strip():
            raise ValueError(f"seed task {n}: 'instruction' must be a non-empty string")
        instances = task.get("instances")
        if (not isinstance(instances, list) or not instances
                or not all(isinstance(i, dict) and isinstance(i.get("input", ""), str)
                           and isinstance(i.get("output"), str) for i in instances)):
            raise ValueError(f"seed task {n}: 'instances' must be a non-empty list of {{input, output}} strings")
        tid = str(task.get("id") or f"seed_task_{n - 1}")
        if tid in ids:
            raise ValueError(f"seed task {n}: duplicate id {tid!r}")
        ids.add(tid)
        out.append({"id": tid, "name": str(task.get("name", "")), "instruction": instruction,
                    "instances": [{"input": i.get("input", ""), "output": i["output"]} for i in instances],
                    "is_classification": bool(task.get("is_classification", False))})
    return out
