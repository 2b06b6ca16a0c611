"""The reference policy's log-probabilities, computed once per run before the first step.

DPO compares the policy with a frozen reference. Here the reference is the model the run starts from:
the base model with the adapter switched off (PEFT's ``disable_adapter()``) for a fresh adapter, or the
starting adapter itself when training continues from one. Either way no second copy of the model is
loaded: the reference's log-probabilities of every pair are a fixed function of the data, so they are
computed once, in eval mode, before any weight moves, and kept (pairs x 2, fp32) for the whole run.
That is also cheaper than a reference forward at every step (one pass over the data instead of one per
epoch). They are saved as ``reference_logps.pt`` in the run folder, so a resumed run (whose weights
have moved) reuses the reference of its first attempt.
"""
from __future__ import annotations

import uuid
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from worker.ml.training.devices import TrainPrecision
from worker.ml.training.preference.data import TokenizedPair, collate_pairs
from worker.ml.training.preference.loss import sequence_logprobs

REFERENCE_FILE = "reference_logps.pt"


@torch.no_grad()
def compute_reference_logprobs(model: Any, pairs: list[TokenizedPair], *, micro_batch_size: int, pad_id: int,
                               precision: TrainPrecision, head_weight: torch.Tensor | None,
                               adapter_off: bool) -> torch.Tensor:
    """(len(pairs), 2) summed response log-probabilities, chosen then rejected, in eval mode (no dropout).
    ``adapter_off``: the base model's (the LoRA layers bypassed), else the model's as it stands."""
    was_training = model.training
    model.eval()
    out = torch.empty(len(pairs), 2, dtype=torch.float32)
    try:
        with model.disable_adapter() if adapter_off else nullcontext():
            for start in range(0, len(pairs), micro_batch_size):
                chunk = pairs[start:start + micro_batch_size]
                batch = collate_pairs(chunk, pad_id)
                logps = sequence_logprobs(model, batch["input_ids"].to(precision.device),
                                          batch["targets"].to(precision.device),
                                          autocast_dtype=precision.autocast_dtype, head_weight=head_weight).cpu()
                out[start:start + len(chunk), 0] = logps[:len(chunk)]
                out[start:start + len(chunk), 1] = logps[len(chunk):]
    finally:
        model.train(was_training)
    return out


def load_or_compute_reference(out_dir: Path, fingerprint: dict, compute) -> torch.Tensor:
    """The saved reference of this run (same fingerprint) or ``compute()``'s, saved atomically first."""
    path = Path(out_dir) / REFERENCE_FILE
    if path.is_file():
        saved = torch.load(path, weights_only=True)
        if saved.get("fingerprint") == fingerprint:
            return saved["logps"]
    logps = compute()
    tmp = path.parent / f".tmp-{path.name}-{uuid.uuid4().hex[:8]}"
    torch.save({"fingerprint": fingerprint, "logps": logps}, tmp)
    tmp.rename(path)
    return logps
