"""The layout's size rules (issue 9): no source file over 300 lines, no ML-core function over 60 lines.

Tests, migrations and data files are out of scope. A failure names each file or function with its size.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE_PACKAGES = ("api", "contracts", "models", "worker", "lorafleet_cli", "lorafleet_demo", "bench")
MAX_FILE_LINES = 300
MAX_ML_FUNCTION_LINES = 60


def source_files() -> list[Path]:
    return sorted(p for pkg in SOURCE_PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_no_source_file_is_over_300_lines():
    long = [f"{p.relative_to(ROOT)}: {n} lines" for p in source_files()
            if (n := p.read_text().count("\n")) > MAX_FILE_LINES]
    assert not long, long


def test_no_ml_core_function_is_over_60_lines():
    long = []
    for path in sorted((ROOT / "worker" / "ml").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_ML_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {n} lines")
    assert not long, long
