"""Torch-free request/result types of the decoding engine (one row in, one row out), shared by batch runs,
evals, local teachers and serving."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

from pydantic import ConfigDict, model_validator

from contracts.configs import SamplingParams

FinishReason = Literal["stop", "length", "error"]


class ModelTarget(NamedTuple):
    """What a model name resolves to: the base model (``adapter_dir=None``) or one adapter folder.

    ``prompt_template`` overrides how chat messages / eval rows are rendered; None means the
    adapter's ``config.json`` (or legacy ``lorafleet.json``; default "alpaca"), or the tokenizer's chat
    template for the base.
    """

    name: str
    adapter_dir: Path | None = None
    prompt_template: str | None = None


class DecodeRequest(SamplingParams):
    """One row: a rendered ``prompt`` or chat ``messages``, the adapter to use, and decoding knobs."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    prompt: str | None = None
    messages: list[dict] | None = None
    adapter_dir: Path | None = None
    prompt_template: str | None = None

    @model_validator(mode="after")
    def _one_input(self):
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of 'prompt' or 'messages'")
        return self

    @property
    def sampling(self) -> SamplingParams:
        return SamplingParams.model_validate(self.model_dump(include=set(SamplingParams.model_fields)))


@dataclass
class DecodeResult:
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    error: str | None = None  # set (with finish_reason "error") when this row alone failed

    @property
    def ok(self) -> bool:
        return self.error is None
