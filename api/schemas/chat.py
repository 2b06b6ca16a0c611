"""OpenAI's ``/v1/chat/completions`` and ``/v1/completions`` bodies and responses, as this API takes them.

The proxy checks a body against these models (and ``contracts.openai_format.parse_openai_body``, the
inference server's own check) before forwarding it, so a bad request is a 400 naming its ``param``
even while the inference server is starting. Fields not declared here are forwarded untouched: the
server accepts OpenAI's other parameters at their neutral values (``presence_penalty: 0``,
``logit_bias: {}`` ...) and refuses them otherwise, with ``param`` named.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.decoding import MAX_TOP_LOGPROBS
from contracts.openai_format import MAX_N
from contracts.openai_logprobs import MAX_COMPLETION_LOGPROBS

MAX_TOKENS = 32768  # contracts.configs.SamplingParams.max_new_tokens
StopSequence = Annotated[str, Field(min_length=1)]


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = Field(description="`text` parts are read; others are ignored")
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str = Field(description="`system`, `developer`, `user`, `assistant` or `tool`")
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = Field(None, description="an assistant's earlier calls (OpenAI shape)")
    tool_call_id: str | None = Field(None, description="on a `tool` message: the call it answers")


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool | None = Field(None, description="send a last chunk with `usage` and no choices")


class CompletionKnobs(BaseModel):
    """What both endpoints share: the model and the decoding knobs (null means the server's default)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, description="a base model, or the name of one of your adapters")
    max_tokens: int | None = Field(None, ge=0, le=MAX_TOKENS,
                                   description="tokens to generate at most (0: only with `echo`, scores the prompt)")
    max_completion_tokens: int | None = Field(None, ge=0, le=MAX_TOKENS, description="wins over `max_tokens`")
    temperature: float | None = Field(None, ge=0, le=2, description="0: greedy; default 1 (sampling)")
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0, le=100000, description="lorafleet extension; 0 or null: off")
    num_beams: int | None = Field(None, ge=0, le=16, description="lorafleet extension; >1 needs temperature 0")
    n: int | None = Field(None, ge=1, le=MAX_N, description="choices per prompt")
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1, description="reproducible sampling (choice i: seed + i)")
    stop: StopSequence | Annotated[list[StopSequence], Field(max_length=16)] | None = None
    stream: bool | None = Field(None, description="answer with server-sent events (`text/event-stream`)")
    stream_options: StreamOptions | None = None
    response_format: dict[str, Any] | None = Field(None, description="`{\"type\": \"json_object\"}` or `{\"type\": "
                                                   "\"json_schema\", \"json_schema\": {name, schema, strict}}`: "
                                                   "enforced by constrained decoding (README)")


TokenIds = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]


class ChatCompletionRequest(CompletionKnobs):
    messages: list[ChatMessage] = Field(min_length=1, description="the conversation so far")
    tools: list[dict[str, Any]] | None = Field(None, description="function tools (`{type: function, function: "
                                               "{name, description, parameters}}`)")
    tool_choice: str | dict[str, Any] | None = Field(None, description="`none`, `auto` (default with tools), "
                                                     "`required`, or `{type: function, function: {name}}`")
    parallel_tool_calls: bool | None = Field(None, description="false: at most one call per answer")
    logprobs: bool | None = Field(None, description="return the log-probability of each answer token "
                                  "(the model's own distribution, before temperature / top-p)")
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS,
                                     description="with `logprobs`: the most likely alternatives per token")


class CompletionRequest(CompletionKnobs):
    prompt: str | Annotated[list[str], Field(min_length=1)] | TokenIds | Annotated[list[TokenIds], Field(min_length=1)] = (
        Field(description="one prompt, or several; text or token ids"))
    logprobs: int | None = Field(None, ge=0, le=MAX_COMPLETION_LOGPROBS, description="log-probability of each "
                                 "token, and this many alternatives (the model's own distribution)")
    echo: bool | None = Field(None, description="return the prompt (and its tokens' logprobs) before the completion")


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[dict[str, Any]] | None = Field(None, description="the calls, when `finish_reason` is "
                                                    "`tool_calls` (`function.arguments` is a JSON string)")


class ChoiceFields(BaseModel):
    model_config = ConfigDict(extra="allow")
    index: int
    logprobs: Any = None
    finish_reason: str | None = None


class ChatChoice(ChoiceFields):
    message: AssistantMessage


class TextChoice(ChoiceFields):
    text: str


class CompletionFields(BaseModel):
    """What ``chat.completion`` and ``text_completion`` objects share (``contracts.openai_format.completion_body``)."""

    model_config = ConfigDict(extra="allow")
    id: str
    created: int
    model: str
    usage: Usage | None = None
    system_fingerprint: str | None = None


class ChatCompletion(CompletionFields):
    object: Literal["chat.completion"] = "chat.completion"
    choices: list[ChatChoice]


class TextCompletion(CompletionFields):
    object: Literal["text_completion"] = "text_completion"
    choices: list[TextChoice]
