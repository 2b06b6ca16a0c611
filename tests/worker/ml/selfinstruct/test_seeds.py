"""The shipped seed tasks and demo data are valid and usable as they are."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts.records import parse_training_file
from contracts.seed_tasks import validate_seed_tasks
from worker.ml.evaluation.rouge_l import contains_cjk
from worker.ml.selfinstruct.seeds import BUILTIN_SEED_TASKS, load_seed_tasks

DEMO = Path(__file__).resolve().parents[4] / "lorafleet_demo" / "demo_alpaca.json"


def test_builtin_seed_tasks():
    seeds = load_seed_tasks()
    assert BUILTIN_SEED_TASKS.exists() and 30 <= len(seeds) <= 50
    zh = [s for s in seeds if contains_cjk(s["instruction"])]
    assert 0.25 <= len(zh) / len(seeds) <= 0.4
    assert any(s["is_classification"] for s in seeds) and any(s["is_classification"] for s in zh)
    assert any(s["instances"][0]["input"] == "" for s in seeds) and any(s["instances"][0]["input"] for s in seeds)
    assert len({s["id"] for s in seeds}) == len(seeds)
    raw = [json.loads(line) for line in BUILTIN_SEED_TASKS.read_text(encoding="utf-8").splitlines()]
    assert all(set(r) == {"id", "name", "instruction", "instances", "is_classification"} for r in raw)


def test_demo_alpaca_file_parses():
    res = parse_training_file(DEMO.read_bytes())
    assert res.ok and res.format == "alpaca" and 100 <= len(res.records) <= 150
    with_input = sum(1 for ex in res.records if ex.input)
    assert 0 < with_input < len(res.records)
    assert len({(ex.instruction, ex.input) for ex in res.records}) == len(res.records)


@pytest.mark.parametrize("bad, message", [
    ([], "no seed tasks"),
    ([{"instruction": " ", "instances": [{"input": "", "output": "x"}]}], "instruction"),
    ([{"instruction": "Do it", "instances": []}], "instances"),
    ([{"instruction": "Do it", "instances": [{"input": "", "output": 3}]}], "instances"),
    ([{"id": "a", "instruction": "x", "instances": [{"output": "y"}]}] * 2, "duplicate id"),
])
def test_seed_validation_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        validate_seed_tasks(bad)


def test_seed_defaults():
    [s] = validate_seed_tasks([{"instruction": "Say hi", "instances": [{"output": "hi"}]}])
    assert s == {"id": "seed_task_0", "name": "", "instruction": "Say hi", "instances": [{"input": "", "output": "hi"}],
                 "is_classification": False}
