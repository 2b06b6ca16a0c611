"""The layout's import rules, checked two ways: a static walk over every import statement (those inside
functions and ``TYPE_CHECKING`` blocks count too) and, for the rules about heavy stacks, what a real
interpreter loads.

    api       never imports worker (the dispatcher is handed in) nor torch / transformers / peft
    worker.ml (the ML core) never imports models, api, the rest of worker, or the service stacks
              (celery, kombu, fastapi, starlette, sqlalchemy, redis)
    contracts (the shared layer) imports pydantic and the standard library only: never torch /
              transformers / peft, the web / database / queue stacks, models, api or worker
    models    never imports api, worker, nor torch / transformers / peft
    worker    never imports api (it runs on models, the shared layer and worker.ml)

A failure names each offending import as ``file:line imports module (rule)``.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ML_STACK = ("torch", "transformers", "peft")
SERVICE_STACKS = ("celery", "kombu", "fastapi", "starlette", "sqlalchemy", "redis")


@dataclass(frozen=True)
class Rule:
    """Modules under ``package`` must not import ``forbidden`` (or their submodules), except ``allowed``."""

    package: str
    forbidden: tuple[str, ...]
    allowed: tuple[str, ...] = ()

    def covers(self, module: str) -> bool:
        return _within(module, self.package)

    def forbids(self, imported: str) -> bool:
        return any(_within(imported, f) for f in self.forbidden) and not any(
            _within(imported, a) for a in self.allowed)

    def __str__(self) -> str:
        return f"{self.package} must not import {', '.join(self.forbidden)}" + (
            f" (except {', '.join(self.allowed)})" if self.allowed else "")


RULES = (
    Rule("api", ("worker", *ML_STACK)),
    Rule("worker.ml", ("models", "api", "worker", *SERVICE_STACKS), allowed=("worker.ml",)),
    Rule("contracts", ("models", "api", "worker", *ML_STACK, *SERVICE_STACKS)),
    Rule("models", ("api", "worker", *ML_STACK)),
    Rule("worker", ("api",)),
)


@dataclass(frozen=True)
class Violation:
    file: str
    line: int
    imported: str
    rule: Rule

    def __str__(self) -> str:
        return f"{self.file}:{self.line} imports {self.imported} ({self.rule})"


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, absolute module) for every import in ``source``; ``from a import b`` yields ``a.b`` (b may
    be a submodule), relative imports are resolved against ``module``."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield node.lineno, base if alias.name == "*" else f"{base}.{alias.name}"


def check_source(source: str, module: str, file: str, is_package: bool = False,
                 rules: tuple[Rule, ...] = RULES) -> list[Violation]:
    applicable = [r for r in rules if r.covers(module)]
    return [Violation(file, line, imported, rule) for line, imported in imports_of(source, module, is_package)
            for rule in applicable if rule.forbids(imported)]


def check_tree(root: Path, rules: tuple[Rule, ...] = RULES) -> list[Violation]:
    found = []
    for package in sorted({r.package.split(".")[0] for r in rules}):
        for path in sorted((root / package).rglob("*.py")):
            found += check_source(path.read_text(), module_name(path, root), str(path.relative_to(root)),
                                  path.name == "__init__.py", rules)
    return found


def test_every_import_follows_the_layout():
    found = check_tree(ROOT)
    assert not found, "imports that break the layout:\n" + "\n".join(map(str, found))


def test_a_planted_violation_is_named(tmp_path):
    """The checker is not vacuous: imports planted in a copy of the layout are reported by file, line, module."""
    for package in ("api/routes", "worker/ml/decoding", "contracts", "models/crud"):
        (tmp_path / package).mkdir(parents=True)
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "api/routes/jobs.py").write_text("import json\n\n\ndef f():\n    from worker.runner import run_job\n")
    (tmp_path / "worker/ml/decoding/engine.py").write_text("from ..training import loop\nfrom ... import runner\n")
    (tmp_path / "worker/tasks.py").write_text("from models.db import session_scope\nimport api.main\n")
    (tmp_path / "contracts/events.py").write_text("from pydantic import BaseModel\nimport sqlalchemy.orm\n")
    (tmp_path / "models/crud/jobs.py").write_text("from models.db import x\nfrom api import errors\n")
    assert sorted(map(str, check_tree(tmp_path))) == sorted([
        f"api/routes/jobs.py:5 imports worker.runner.run_job ({RULES[0]})",
        f"worker/ml/decoding/engine.py:2 imports worker.runner ({RULES[1]})",
        f"contracts/events.py:2 imports sqlalchemy.orm ({RULES[2]})",
        f"models/crud/jobs.py:2 imports api.errors ({RULES[3]})",
        f"worker/tasks.py:2 imports api.main ({RULES[4]})",
    ])


def loaded_modules(code: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sys.modules))"],
                          check=False, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(proc.stdout.split())


def _loaded_from(mods: set[str], packages: tuple[str, ...]) -> set[str]:
    return {m for m in mods if any(_within(m, p) for p in packages)}


def _all_modules(package: str) -> list[str]:
    return sorted(module_name(p, ROOT) for p in (ROOT / package).rglob("*.py") if p.name != "__init__.py")


def test_api_does_not_import_torch():
    mods = loaded_modules("from api.main import create_app\nfrom models.settings import Settings\n"
                          "app = create_app(Settings(LORAFLEET_DATA_DIR='/tmp/lf-boundary'))\n"
                          + "\n".join(f"import {m}" for m in _all_modules("api")))
    assert "fastapi" in mods
    assert not _loaded_from(mods, (*ML_STACK, "worker"))


def test_ml_core_does_not_import_service_layers():
    mods = loaded_modules("\n".join(f"import {m}" for m in _all_modules("worker/ml")))
    assert not _loaded_from(mods, ("models", "api", *SERVICE_STACKS))
    assert {m for m in mods if _within(m, "worker")} <= {"worker"} | _loaded_from(mods, ("worker.ml",))
    for path in (ROOT / "worker" / "ml").rglob("*.py"):
        assert "os.environ" not in path.read_text(), f"{path} reads the environment"


def test_shared_layer_loads_no_heavy_stack():
    mods = loaded_modules("\n".join(f"import {m}" for m in _all_modules("contracts")))
    assert "pydantic" in mods
    assert not _loaded_from(mods, ("models", "api", "worker", *ML_STACK, *SERVICE_STACKS))
