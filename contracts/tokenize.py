"""``/v1/tokenize`` and ``/v1/detokenize`` bodies in vLLM's shape, checked the same way by the API and by the
inference server (a bad body is a 400 naming its field, whether or not the server is up).

tokenize: ``model`` and either ``prompt`` (``add_special_tokens``, default true) or ``messages`` (rendered the
way the engine renders them for that model: the chat template, or an adapter's own prompt template;
``add_generation_prompt``, default true; ``add_special_tokens`` defaults to what the engine uses, false for
chat-template text) -> ``{count, max_model_len, tokens}`` (``token_strs`` too with ``return_token_strs``).
detokenize: ``model`` and ``tokens`` -> ``{prompt}``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, ValidationError, field_validator

from contracts.openai_format import RequestError

TOKENIZE_URL = "/v1/tokenize"
DETOKENIZE_URL = "/v1/detokenize"


class TokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, description="a base model or one of your adapters / checkpoints")
    prompt: str | None = Field(None, description="text to tokenize (give this or `messages`)")
    messages: list[dict[str, Any]] | None = Field(
        None, min_length=1, description="chat messages, rendered with the model's prompt template first")
    add_special_tokens: bool | None = Field(
        None, description="add the tokenizer's special tokens (e.g. BOS); default true for `prompt`, and for "
                          "`messages` what the engine does (false for chat-template text, which carries its own)")
    add_generation_prompt: bool = Field(True, description="`messages` only: end with the assistant turn's start")
    return_token_strs: bool = Field(False, description="also return each token as a string")

    @field_validator("messages")
    @classmethod
    def _messages(cls, messages: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        for i, m in enumerate(messages or []):
            if not isinstance(m.get("role"), str):
                raise ValueError(f"messages[{i}] needs a string 'role'")  # noqa: TRY004 - pydantic wants it
            content = m.get("content")
            parts_ok = isinstance(content, list) and all(isinstance(p, dict) for p in content)
            if not (content is None or isinstance(content, str) or parts_ok):
                raise ValueError(f"messages[{i}].content must be a string or a list of content parts")
        return messages


class DetokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, description="a base model or one of your adapters / checkpoints")
    tokens: list[NonNegativeInt] = Field(description="token ids to turn back into text")


class TokenizeResponse(BaseModel):
    count: int
    max_model_len: int
    tokens: list[int]
    token_strs: list[str] | None = None


class DetokenizeResponse(BaseModel):
    prompt: str


def parse_tokenize_body(body: Any) -> TokenizeRequest:
    """The checked tokenize body; ``RequestError`` (400) naming the field otherwise."""
    req = _validate(TokenizeRequest, body)
    if req.prompt is None and req.messages is None:
        raise RequestError("give 'prompt' (text) or 'messages' (chat)", "prompt", "missing_required_parameter")
    if req.prompt is not None and req.messages is not None:
        raise RequestError("give 'prompt' or 'messages', not both", "messages")
    if req.prompt is not None and "add_generation_prompt" in req.model_fields_set:
        raise RequestError("'add_generation_prompt' applies to 'messages' only", "add_generation_prompt")
    return req


def parse_detokenize_body(body: Any) -> DetokenizeRequest:
    """The checked detokenize body; ``RequestError`` (400) naming the field otherwise."""
    return _validate(DetokenizeRequest, body)


def _validate(schema: type[BaseModel], body: Any):
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object", None, "invalid_json")
    try:
        return schema.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = _param(first["loc"])
        code = {"missing": "missing_required_parameter", "extra_forbidden": "unsupported_parameter"}.get(
            first["type"], "invalid_value")
        message = first["msg"].removeprefix("Value error, ")
        raise RequestError(f"{param}: {message}" if param else message, param, code) from None


def _param(loc: Sequence[Any]) -> str | None:
    """``("messages", 0, "role")`` -> ``"messages.0.role"``, as the API names fields."""
    return ".".join(str(p) for p in loc) or None
