"""What a LoRA run reads from and writes to ``out_dir``: resume from the latest checkpoint, save a
checkpoint, save the final adapter. Every folder gets the run's ``config.json`` inside its
temporary folder, before the rename, so a complete folder always has it.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from contracts.run_config import RUN_CONFIG_FILE
from worker.ml.training.checkpoints import (
    latest_checkpoint,
    load_checkpoint,
    remove_stale_temp_dirs,
    save_checkpoint,
)
from worker.ml.training.lora import save_adapter, verify_adapter_files
from worker.ml.training.run_setup import TrainingRun

ADAPTER_DIR = "adapter"
PROBE_TOKENS = 64  # tokens of the first training example fed to the saved adapter to check its logits


def resume_from_latest_checkpoint(run: TrainingRun) -> None:
    """Continue from ``out_dir``'s latest checkpoint, if any: weights, optimizer, schedule, RNG, progress.

    A checkpoint whose run fingerprint differs (other data or batching) is refused.
    """
    remove_stale_temp_dirs(run.out_dir)
    latest = latest_checkpoint(run.out_dir)
    if latest is None:
        return
    meta = load_checkpoint(latest, model=run.model, optimizer=run.optimizer, scheduler=run.scheduler,
                           scaler=run.scaler)
    if meta.get("fingerprint") != run.data.fingerprint(run.hp):
        raise ValueError(f"{latest} belongs to a different run (data or batching changed); use a new out_dir")
    run.step, run.tokens, run.metrics = meta["step"], meta["tokens"], meta.get("metrics", {})
    run.resumed_from = run.last_saved = run.step


def config_json(run: TrainingRun, artifact: str, step: int) -> str:
    """The ``config.json`` text of an adapter or checkpoint folder written at ``step``."""
    return run.config.model_copy(update={"artifact": artifact, "step": step}).model_dump_json(indent=2) + "\n"


def save_run_checkpoint(run: TrainingRun, at_step: int, rng_state: dict,
                        on_checkpoint: Callable[[dict], None] | None) -> None:
    """Checkpoint the state after ``at_step`` (``rng_state`` as it was at that step's end) and report it."""
    meta = {"tokens": run.tokens, "total_steps": run.data.plan.total_steps, "metrics": run.metrics,
            "fingerprint": run.data.fingerprint(run.hp)}
    path = save_checkpoint(run.out_dir, at_step, model=run.model, optimizer=run.optimizer, scheduler=run.scheduler,
                           rng_state=rng_state, meta=meta, scaler=run.scaler,
                           extra_files={RUN_CONFIG_FILE: config_json(run, "checkpoint", at_step)})
    run.last_saved = at_step
    if on_checkpoint:
        on_checkpoint({"step": at_step, "path": str(path), "metrics": dict(run.metrics)})


def save_final_adapter(run: TrainingRun) -> Path:
    """Write ``out_dir/adapter`` (verified against the in-memory model), unless a rerun of a finished
    run finds it already complete."""
    adapter_dir = run.out_dir / ADAPTER_DIR
    if run.resumed_from == run.data.plan.total_steps and _adapter_ok(adapter_dir):
        return adapter_dir
    probe = torch.tensor([run.data.train[0].input_ids[:PROBE_TOKENS]], device=run.precision.device)
    return save_adapter(run.model, adapter_dir, probe_ids=probe, autocast_dtype=run.precision.autocast_dtype,
                        extra_files={RUN_CONFIG_FILE: config_json(run, "adapter", run.step)})


def _adapter_ok(adapter_dir: Path) -> bool:
    try:
        verify_adapter_files(adapter_dir)
        return True
    except RuntimeError:
        return False
