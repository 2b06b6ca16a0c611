"""Training checkpoints: adapter + optimizer + scheduler + RNG + data position, saved atomically.

Layout: ``<out_dir>/checkpoints/step-<N>/`` holds a PEFT adapter folder (``adapter_config.json``,
``adapter_model.safetensors``), ``training_state.pt`` (optimizer, scheduler, RNG) and
``checkpoint.json`` (step, tokens, metrics, run fingerprint), plus any ``extra_files`` the caller
passes (the run's ``config.json``). A checkpoint is written under a
temporary name and renamed, so a directory named ``step-<N>`` is always complete. The data
position is the step number: the micro-batch plan is a pure function of (seed, epoch).
"""
from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

CHECKPOINTS_DIR = "checkpoints"
STATE_FILE = "training_state.pt"
META_FILE = "checkpoint.json"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def checkpoints_root(out_dir: Path) -> Path:
    return Path(out_dir) / CHECKPOINTS_DIR


def checkpoint_path(out_dir: Path, step: int) -> Path:
    return checkpoints_root(out_dir) / f"step-{step}"


def capture_rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    out_dir: Path,
    step: int,
    *,
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    rng_state: dict[str, Any],
    meta: dict[str, Any],
    scaler: Any | None = None,
    extra_files: Mapping[str, str] | None = None,
) -> Path:
    """Write ``checkpoints/step-<step>`` atomically and return its path. ``meta`` must be JSON-safe;
    ``extra_files`` (name -> text) are written into the folder before it gets its final name."""
    root = checkpoints_root(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-step-{step}-{uuid.uuid4().hex[:8]}"
    try:
        model.save_pretrained(str(tmp))
        state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state}
        if scaler is not None:
            state["scaler"] = scaler.state_dict()
        torch.save(state, tmp / STATE_FILE)
        (tmp / META_FILE).write_text(json.dumps({"step": step, **meta}, indent=1))
        write_text_files(tmp, extra_files)
        final = checkpoint_path(out_dir, step)
        if final.exists():  # same step written again (a resumed run re-saving): replace it
            shutil.rmtree(final)
        tmp.rename(final)
        return final
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text_files(folder: Path, files: Mapping[str, str] | None) -> None:
    """Write ``name -> text`` into ``folder`` (a temporary folder about to be renamed into place)."""
    for name, text in (files or {}).items():
        (Path(folder) / name).write_text(text)


def remove_stale_temp_dirs(out_dir: Path) -> None:
    """Delete half-written ``.tmp-*`` folders left by a killed process (call before training starts)."""
    for parent in (Path(out_dir), checkpoints_root(out_dir)):
        if parent.is_dir():
            for child in parent.glob(".tmp-*"):
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)


def list_checkpoints(out_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary directories are ignored)."""
    root = checkpoints_root(out_dir)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and (child / META_FILE).is_file() and (child / STATE_FILE).is_file():
            found.append((int(match.group(1)), child))
    return [path for _, path in sorted(found)]


def latest_checkpoint(out_dir: Path) -> Path | None:
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


def read_checkpoint_meta(path: Path) -> dict[str, Any]:
    return json.loads((Path(path) / META_FILE).read_text())


def load_checkpoint(
    path: Path,
    *,
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any | None = None,
) -> dict[str, Any]:
    """Restore adapter weights, optimizer, scheduler and RNG from ``path``; return its meta."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = Path(path)
    device = next(p.device for p in model.parameters() if p.requires_grad)
    weights = load_file(str(path / "adapter_model.safetensors"), device=str(device))
    result = set_peft_model_state_dict(model, weights)
    if getattr(result, "unexpected_keys", None):
        raise ValueError(f"checkpoint {path} does not match the model: unexpected {result.unexpected_keys[:3]}")
    state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    restore_rng_state(state["rng"])
    return read_checkpoint_meta(path)
