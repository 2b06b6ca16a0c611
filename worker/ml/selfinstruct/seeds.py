"""The seed tasks lorafleet ships (Self-Instruct format), and loading a seed-task file from disk."""
from __future__ import annotations

import json
from pathlib import Path

from contracts.seed_tasks import validate_seed_tasks

BUILTIN_SEED_TASKS = Path(__file__).with_name("data") / "seed_tasks.jsonl"


def load_seed_tasks(path: Path = BUILTIN_SEED_TASKS) -> list[dict]:
    """Read a seed-task JSONL file (``id, name, instruction, instances, is_classification``)."""
    with open(path, encoding="utf-8") as f:
        return validate_seed_tasks([json.loads(line) for line in f if line.strip()])
