"""Torch-free request/result types of the decoding engine (one row in, one row out), shared by batch runs,
evals, local teachers and serving."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

from pydantic import ConfigDict, Field, model_validator

from contracts.configs import SamplingParams
from contracts.structured import OutputConstraint

FinishReason = Literal["stop", "length", "error", "tool_calls"]


class ModelTarget(NamedTuple):
    """What a model name resolves to: the base model (``adapter_dir=None``) or one adapter folder.

    ``prompt_template`` overrides how chat messages / eval rows are rendered; None means the
    adapter's ``config.json`` (or legacy ``lorafleet.json``; default "alpaca"), or the tokenizer's chat
    template for the base.
    """

    name: str
    adapter_dir: Path | None = None
    prompt_template: str | None = None


MAX_TOP_LOGPROBS = 20  # OpenAI's chat limit (legacy completions allow 5)


class DecodeRequest(SamplingParams):
    """One row: a rendered ``prompt``, a token prompt ``prompt_ids`` or chat ``messages``, the adapter to
    use, and decoding knobs.

    ``logprobs``: None = no log-probabilities; k >= 0 = the log-probability of every returned token plus
    its k most likely alternatives. ``echo``: the prompt tokens (with their log-probabilities when
    ``logprobs`` is set) come back before the generated ones; with ``echo``, ``max_new_tokens`` may be 0
    (score the prompt only).
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    max_new_tokens: int = Field(128, ge=0, le=32768, description="tokens to generate at most (0: only with echo)")
    prompt: str | None = None
    prompt_ids: list[int] | None = None
    messages: list[dict] | None = None
    adapter_dir: Path | None = None
    prompt_template: str | None = None
    logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    echo: bool = False
    tools: list[dict] | None = None  # OpenAI function tools shown in the chat prompt (contracts.tools)
    constraint: OutputConstraint | None = None  # grammar of the answer (response_format / tools)

    @model_validator(mode="after")
    def _one_input(self):
        if sum(x is not None for x in (self.prompt, self.prompt_ids, self.messages)) != 1:
            raise ValueError("give exactly one of 'prompt', 'prompt_ids' or 'messages'")
        if self.max_new_tokens == 0 and not self.echo:
            raise ValueError("max_new_tokens must be at least 1 (0 only with echo)")
        if self.prompt_ids is not None and (not self.prompt_ids or any(t < 0 for t in self.prompt_ids)):
            raise ValueError("'prompt_ids' must be a non-empty list of token ids >= 0")
        return self

    @property
    def sampling(self) -> SamplingParams:
        return SamplingParams.model_validate(self.model_dump(include=set(SamplingParams.model_fields)))


class TokenPiece(NamedTuple):
    """A token as OpenAI shows it: its text (``"bytes:\\xe2\\x80"`` when it is only part of a UTF-8
    character) and its raw UTF-8 bytes."""

    text: str
    bytes: list[int]


@dataclass
class TokenLogprobs:
    """Log-probabilities of a row's returned tokens: the echoed prompt tokens first (when ``echo``), then
    the generated ones (the end-of-sequence token included). ``token_logprobs[i]`` is
    log p(token_ids[i] | tokens before it) under the model's own distribution (log_softmax of the raw
    logits, before temperature / top-p / top-k), None for the first prompt token (nothing precedes it).
    ``top_logprobs[i]``: the k most likely (token id, logprob) at that position, most likely first
    (empty for the first prompt token). ``text_offset[i]``: where token i starts in the prompt + completion
    text; ``pieces``: the text and bytes of every token id above (the engine fills both)."""

    token_ids: list[int] = field(default_factory=list)
    token_logprobs: list[float | None] = field(default_factory=list)
    top_logprobs: list[list[tuple[int, float]]] = field(default_factory=list)
    text_offset: list[int] = field(default_factory=list)
    pieces: dict[int, TokenPiece] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.token_ids)

    def since(self, start: int) -> TokenLogprobs:
        """The tokens from ``start`` on (what a stream chunk carries)."""
        ids = self.token_ids[start:]
        tops = self.top_logprobs[start:]
        used = set(ids) | {t for top in tops for t, _ in top}
        return TokenLogprobs(ids, self.token_logprobs[start:], tops, self.text_offset[start:],
                             {t: self.pieces[t] for t in used if t in self.pieces})


@dataclass
class DecodeResult:
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    error: str | None = None  # set (with finish_reason "error") when this row alone failed
    logprobs: TokenLogprobs | None = None  # set when the request asked for ``logprobs``
    tool_calls: list[dict] | None = None  # OpenAI ``tool_calls`` read from the answer (contracts.tools)

    @property
    def ok(self) -> bool:
        return self.error is None
