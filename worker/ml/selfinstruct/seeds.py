"""Seed tasks (Self-Instruct format): loading, validation, and the ones lorafleet ships."""
from __future__ import annotations

import json
from pathlib import Path

BUILTIN_SEED_TASKS = Path(__file__).with_name("data") / "seed_tasks.jsonl"


def load_seed_tasks(path: Path = BUILTIN_SEED_TASKS) -> list[dict]:
    """Read a seed-task JSONL file (``id, name, instruction, instances, is_classification``)."""
    with open(path, encoding="utf-8") as f:
        return validate_seed_tasks([json.loads(line) for line in f if line.strip()])


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
