"""The resolved config of a fine-tuning run: ``config.json`` in every adapter and checkpoint folder.

One typed, torch-free record of what produced the weights beside it — the hyperparameters (every
default resolved), the prompt template, the base model, the exact data trained on, the library
versions and the device/precision actually used — so the API, the worker and tools agree on it.
Serving reads ``prompt_template`` from it to format requests the way the adapter was trained.

``config.json`` sits beside PEFT's ``adapter_config.json``. ``PeftModel.from_pretrained(base, folder)``
and ``AutoPeftModelForCausalLM.from_pretrained(folder)`` read only the latter and load as before.
transformers' own ``AutoModelForCausalLM.from_pretrained(folder)`` does not: a folder with both files
is taken for a full model with an embedded adapter, and this file has no ``model_type`` (load the
base model and then the adapter instead). The name is the one the design promises; changing
``RUN_CONFIG_FILE`` (plus the legacy read) is all a rename would take.
"""
from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.configs import FinetuneHyperparameters, PromptTemplateName

RUN_CONFIG_FILE = "config.json"
RUN_CONFIG_FORMAT = "lorafleet.run_config.v1"
LIBRARIES = ("torch", "transformers", "peft", "lorafleet")


class BaseModelRecord(BaseModel):
    """The base model the adapter belongs to: the name asked for and the folder it resolved to."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., description="the job's base model name (or the folder when called without one)")
    path: str = Field(..., description="resolved HF checkpoint folder")
    config_sha256: str = Field(..., description="sha256 of the folder's config.json bytes")


class DataFileRecord(BaseModel):
    """One data file as read: its bytes' sha256, and its id when it came from the file store."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["training", "validation"]
    file_id: str | None = Field(None, description="uploaded file id (None: a local file or in-memory data)")
    sha256: str = Field(..., description="sha256 of the file's bytes")
    size_bytes: int = Field(..., ge=0)


class TrainingDataRecord(BaseModel):
    """What the run trained and validated on, after the seeded train/validation split."""

    model_config = ConfigDict(extra="forbid")

    files: list[DataFileRecord] = Field(default_factory=list, description="empty when given examples directly")
    train_examples_sha256: str = Field(..., description="sha256 of the training examples (see examples_sha256)")
    n_train: int = Field(..., ge=0, description="examples with a token to learn from")
    n_val: int = Field(..., ge=0)


class RuntimeRecord(BaseModel):
    """Where and how the run actually executed (``precision: auto`` resolved)."""

    model_config = ConfigDict(extra="forbid")

    device: str
    precision: Literal["bf16", "fp16", "fp32"]
    frozen_weights_dtype: str = Field(..., description="storage dtype of the frozen base weights")
    grad_scaler: bool


class RunConfig(BaseModel):
    """``config.json`` of an adapter (``artifact="adapter"``) or a checkpoint (``"checkpoint"``)."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["lorafleet.run_config.v1"] = RUN_CONFIG_FORMAT
    artifact: Literal["adapter", "checkpoint"]
    step: int = Field(..., ge=0, description="optimizer steps behind these weights")
    total_steps: int = Field(..., ge=1)
    prompt_template: PromptTemplateName = Field(..., description="what serving formats requests with")
    hyperparameters: FinetuneHyperparameters
    method: Literal["supervised", "dpo"] = Field("supervised", description="the training objective")
    dpo_beta: float | None = Field(None, gt=0, description="method dpo: beta; the reference policy is the starting "
                                   "adapter when hyperparameters.init_adapter is set, else the base model")
    base_model: BaseModelRecord
    data: TrainingDataRecord
    libraries: dict[str, str] = Field(..., description="python and the versions of " + ", ".join(LIBRARIES))
    runtime: RuntimeRecord

    @model_validator(mode="after")
    def _template_is_the_trained_one(self):
        if self.prompt_template != self.hyperparameters.prompt_template:
            raise ValueError("prompt_template must be hyperparameters.prompt_template")
        return self


def bytes_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks (weights-sized files stay out of memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def examples_sha256(examples: Iterable) -> str:
    """sha256 over the examples in order, one canonical JSON line each (instruction, input, output,
    messages): the same data gives the same hash whatever file format carried it."""
    digest = hashlib.sha256()
    for ex in examples:
        row = {"instruction": ex.instruction, "input": ex.input, "output": ex.output, "messages": ex.messages}
        digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode() + b"\n")
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    """Installed versions of python and the libraries that shape training ("absent" if not installed)."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def read_run_config(folder: Path) -> RunConfig | None:
    """The validated ``config.json`` of an adapter/checkpoint folder; None when absent or not ours."""
    raw = _read_json(Path(folder) / RUN_CONFIG_FILE)
    if raw is None or raw.get("format") != RUN_CONFIG_FORMAT:
        return None
    return RunConfig.model_validate(raw)


def read_prompt_template(folder: Path) -> str | None:
    """The prompt template recorded in ``config.json`` (tolerant: no full validation, so a newer
    writer's extra fields do not stop serving); None when the file is absent or not ours."""
    raw = _read_json(Path(folder) / RUN_CONFIG_FILE)
    if raw is None or raw.get("format") != RUN_CONFIG_FORMAT:
        return None
    value = raw.get("prompt_template")
    return value if isinstance(value, str) and value else None


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None
