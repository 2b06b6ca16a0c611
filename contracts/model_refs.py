"""Model names as users write them, and what one resolves to -- the pure half of model-name resolution.

A name is a base model (``smollm2-135m-instruct``, or one registered in the database), an adapter
(``ft:<base>:<suffix>:<job>``) or a checkpoint of a fine-tuning job (``<adapter>:ckpt-step-N``).
Parsing lives here; the database lookup that turns a name into a ``ModelRef`` is
``models.crud.model_refs.resolve_model``, used by both the API (owner's models only, 404 naming the
parameter) and the worker (batch / eval / teachers with the owner, serving with ``owner_id=None``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from contracts.decoding import ModelTarget

CHECKPOINT_MARKER = ":ckpt-step-"
ModelKind = Literal["base", "adapter", "checkpoint"]


@dataclass(frozen=True)
class ModelName:
    """A non-base model name split into the adapter it names and, for a checkpoint, the step part."""

    name: str
    adapter_name: str
    checkpoint: str | None  # the text after ``:ckpt-step-``; None for the adapter itself

    @property
    def is_checkpoint(self) -> bool:
        return self.checkpoint is not None


def parse_model_name(name: str) -> ModelName:
    adapter_name, marker, step = name.partition(CHECKPOINT_MARKER)
    return ModelName(name=name, adapter_name=adapter_name, checkpoint=step if marker else None)


class ModelRef(BaseModel):
    """What a model name resolves to: its kind, the base model it runs on, and its adapter folder and
    prompt template (None for a base model; None template means the adapter's default)."""

    name: str
    kind: ModelKind
    base_model: str
    adapter_path: str | None = None
    prompt_template: str | None = None

    @property
    def target(self) -> ModelTarget:
        """The inference engine's view of this model."""
        return ModelTarget(self.name, Path(self.adapter_path) if self.adapter_path else None, self.prompt_template)


class ModelNotFound(LookupError):
    """No such model for this owner. ``what`` is "model" or "checkpoint" (for the error message)."""

    def __init__(self, name: str, what: str = "model"):
        super().__init__(name)
        self.name, self.what = name, what

    @property
    def message(self) -> str:
        return f"The {self.what} '{self.name}' does not exist"
