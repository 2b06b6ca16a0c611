"""Import direction: the API never loads torch; worker.ml never loads celery/fastapi/sqlalchemy/settings."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def loaded_modules(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sys.modules))"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_api_does_not_import_torch():
    mods = loaded_modules("from api.main import create_app\nfrom models.settings import Settings\n"
                          "app = create_app(Settings(LORAFLEET_DATA_DIR='/tmp/lf-boundary'))\n"
                          "import api.routes.files, api.routes.jobs, api.routes.models")
    assert "fastapi" in mods
    assert not {m for m in mods if m == "torch" or m.startswith("torch.")}
    assert "transformers" not in mods and "peft" not in mods


def test_ml_core_does_not_import_service_layers():
    ml_modules = sorted(p.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
                        for p in (ROOT / "worker" / "ml").rglob("*.py") if p.name != "__init__.py")
    mods = loaded_modules("\n".join(f"import {m}" for m in ml_modules))
    forbidden = {"celery", "fastapi", "sqlalchemy", "models.settings", "models", "kombu", "redis"}
    assert not forbidden & mods, forbidden & mods
    for path in (ROOT / "worker" / "ml").rglob("*.py"):
        assert "os.environ" not in path.read_text(), f"{path} reads the environment"
