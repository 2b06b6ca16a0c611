"""Seed-task files as users upload them: JSONL, one Self-Instruct task per line.

``parse_seed_file`` is what both the API (at submit, to refuse a bad file with every bad line named)
and the worker (to load the seeds) call, so the two can never disagree about a file.
"""
from __future__ import annotations

import re
from typing import Any

from contracts.records import LineError, iter_json_lines, parse_records

MAX_REPORTED_ERRORS = 100
_TASK_PREFIX = re.compile(r"^seed task (\d+): ")


class SeedFileError(ValueError):
    """The file is not a valid seed-task file; ``errors`` name each bad line (1-based)."""

    def __init__(self, errors: list[LineError]):
        self.errors = errors
        super().__init__("; ".join(f"line {e.line}: {e.message}" if e.line else e.message for e in errors[:5]))


def _task_error(line: int, exc: ValueError) -> LineError:
    return LineError(line, "invalid_seed_task", _TASK_PREFIX.sub("", str(exc)))


def parse_seed_record(obj: Any, line: int) -> tuple[tuple[int, dict] | None, LineError | None]:
    """(line, task) checked on its own, so that every bad line is reported (duplicates need the whole file)."""
    try:
        validate_seed_tasks([obj])
    except ValueError as exc:
        return None, _task_error(line, exc)
    return (line, obj), None


def parse_seed_file(data: bytes, max_line_bytes: int = 1 << 20) -> list[dict]:
    """Parse and validate a seed-task JSONL file; returns the normalised tasks or raises ``SeedFileError``."""
    res = parse_records(iter_json_lines(data, max_line_bytes), parse_seed_record, MAX_REPORTED_ERRORS)
    if res.errors:
        empty = res.errors[0].code == "empty_file"
        raise SeedFileError([LineError(0, "empty_file", "the seed file has no tasks")] if empty else res.errors)
    numbered: list[tuple[int, dict]] = res.records
    try:  # what only the whole file can get wrong: duplicate ids
        return validate_seed_tasks([task for _, task in numbered])
    except ValueError as exc:
        match = _TASK_PREFIX.match(str(exc))
        line = numbered[int(match.group(1)) - 1][0] if match else 0
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
