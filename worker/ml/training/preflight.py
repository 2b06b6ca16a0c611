"""Preflight of a fine-tuning job: token counts, truncation, the split, the step plan and the memory estimate.

Runs before any model is loaded (tokenizer only), so a bad file fails in ``validating_files``
without spending accelerator time. The result is JSON-safe.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from contracts.configs import FinetuneHyperparameters
from contracts.memory_estimate import ModelShape, describe, estimate_job_memory
from contracts.records import Example
from worker.ml.training.data import (
    IGNORE_INDEX,
    TokenizedExample,
    load_tokenizer,
    n_val_examples,
    pack_step,
    plan_epoch,
    plan_steps,
    split_train_val,
    tokenize_examples,
)
from worker.ml.training.throughput import estimate_training_seconds, local_device_kind

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

MAX_LINES_REPORTED = 20
N_SAMPLES = 3


def run_preflight(examples: list[Example], tokenizer_dir: Path, hp: FinetuneHyperparameters,
                  device_kind: str | None = None) -> dict:
    """Count tokens and steps for ``examples`` under ``hp``; show three examples with their loss mask.

    ``trainable_tokens`` counts the positions that carry a loss (after ``train_on_inputs`` masking
    and ``cutoff_len`` truncation). Examples with none of them are listed as ``n_untrainable``;
    training skips them. ``memory_estimate`` is what the dispatcher will reserve on a GPU worker for
    the training run (``contracts.memory_estimate``; null when the model dir has no ``config.json``).
    ``time_estimate`` is the run's ETA at the measured training rate of ``device_kind`` (default: this
    host's device; ``worker.ml.training.throughput``).
    """
    tokenizer = load_tokenizer(tokenizer_dir)
    tokenized = tokenize_examples(examples, tokenizer, cutoff_len=hp.cutoff_len,
                                  train_on_inputs=hp.train_on_inputs, template=hp.prompt_template)
    over = [t.line for t in tokenized if t.truncated]
    untrainable = [t.line for t in tokenized if t.n_loss_tokens == 0]
    n_val = n_val_examples(len(examples), hp.val_set_size)
    n_train = len(examples) - n_val
    plan = plan_steps(n_train, hp.batch_size, hp.micro_batch_size, hp.num_epochs)
    micro_per_epoch, total_micro = plan.micro_batches_per_epoch, plan.total_micro_batches
    if hp.packing and plan.micro_batches_per_epoch:
        micro_per_epoch = packed_micro_batches(tokenized, hp)
        total_micro = -(-total_micro * micro_per_epoch // plan.micro_batches_per_epoch)  # epoch 0's ratio
    return {
        "n_examples": len(examples),
        "total_tokens": sum(len(t.input_ids) for t in tokenized),
        "trainable_tokens": sum(t.n_loss_tokens for t in tokenized),
        "max_tokens": max((len(t.input_ids) for t in tokenized), default=0),
        "cutoff_len": hp.cutoff_len,
        "n_over_cutoff": len(over),
        "over_cutoff_lines": over[:MAX_LINES_REPORTED],
        "n_untrainable": len(untrainable),
        "untrainable_lines": untrainable[:MAX_LINES_REPORTED],
        "n_train": n_train,
        "n_val": n_val,
        "micro_batches_per_epoch": micro_per_epoch,
        "steps_per_epoch": plan.steps_per_epoch,
        "total_micro_batches": total_micro,
        "packing": hp.packing,
        "estimated_steps": plan.total_steps,
        "gradient_accumulation_steps": hp.gradient_accumulation_steps,
        "samples": [describe_sample(t, tokenizer) for t in tokenized[:N_SAMPLES]],
        "memory_estimate": training_memory_estimate(tokenizer_dir, hp),
        "time_estimate": training_time_estimate(tokenizer_dir, hp, sum(len(t.input_ids) for t in tokenized),
                                                n_train / max(len(examples), 1), device_kind),
    }


def training_time_estimate(model_dir: Path, hp: FinetuneHyperparameters, total_tokens: int, train_share: float,
                           device_kind: str | None) -> dict | None:
    """ETA of the training run from its token count and the device kind's measured rate (null without
    the base model's ``config.json``)."""
    config = Path(model_dir) / "config.json"
    if not config.is_file():
        return None
    shape = ModelShape.from_hf_config(json.loads(config.read_text()))
    return estimate_training_seconds(round(total_tokens * train_share), hp.num_epochs, shape.n_params,
                                     device_kind or local_device_kind())


def training_memory_estimate(model_dir: Path, hp: FinetuneHyperparameters) -> dict | None:
    """The training run's per-GPU memory (bytes, GiB, breakdown), from the base model's ``config.json``:
    the same function and the same shape as the dispatcher's estimate for the fine-tuning job."""
    config = Path(model_dir) / "config.json"
    if not config.is_file():
        return None
    shape = ModelShape.from_hf_config(json.loads(config.read_text()))
    return describe(estimate_job_memory("fine_tuning", {"hyperparameters": hp.model_dump(mode="json")}, shape))


def packed_micro_batches(tokenized: list[TokenizedExample], hp: FinetuneHyperparameters) -> int:
    """Forward passes of the first epoch with ``packing`` (the training loop's split, steps and packing)."""
    train, _ = split_train_val(tokenized, hp.val_set_size, hp.seed)
    lengths = [len(t.input_ids) for t in train]
    steps = plan_epoch(lengths, hp.batch_size, hp.micro_batch_size, hp.seed, 0, hp.group_by_length)
    return sum(len(pack_step([i for mb in step for i in mb], lengths, hp.cutoff_len, hp.micro_batch_size))
               for step in steps)


def describe_sample(example: TokenizedExample, tokenizer: PreTrainedTokenizerBase) -> dict:
    """The example's text split into what is masked (-100) and what the loss is taken on."""
    masked = [tok for tok, lab in zip(example.input_ids, example.labels) if lab == IGNORE_INDEX]
    trained = [tok for tok, lab in zip(example.input_ids, example.labels) if lab != IGNORE_INDEX]
    return {
        "line": example.line,
        "n_tokens": len(example.input_ids),
        "n_masked_tokens": len(masked),
        "n_trained_tokens": len(trained),
        "truncated": example.truncated,
        "masked_text": tokenizer.decode(masked),
        "trained_text": tokenizer.decode(trained),
    }
