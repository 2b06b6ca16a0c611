"""Structured outputs: OpenAI's ``response_format`` -> the grammar a row is decoded under (torch-free).

A constrained row carries an ``OutputConstraint``: an llguidance grammar (JSON schema, or Lark with
embedded JSON schemas for tool calls, see ``contracts.tools``) that ``worker.ml.decoding.constraints``
turns into a per-row token mask inside the engine's own batched decode loop, so every finished answer
parses and validates against its schema, with rows of different schemas (and unconstrained rows) in
one batch. EOS is allowed only where the grammar accepts, so an answer ends cleanly; an answer cut by
``max_tokens`` (finish ``length``) or by a ``stop`` sequence is, as with OpenAI, not complete JSON.

Why llguidance (the four candidates on PyPI, checked with ``pip install --dry-run`` beside torch 2.13.0 CPU):
- llguidance 1.9: Rust, torch-free, installs alone; a row's bitmask takes ~0.1 ms on the 49k-token
  SmolLM2 vocabulary (measured here) with no per-schema precompilation (an Earley parser over a lazy
  lexer), so per-request schemas cost nothing up front; JSON Schema (refs, anyOf, bounds,
  ``additionalProperties``) *and* Lark grammars embedding JSON schemas (``%json``), which "plain text or
  a tool call" needs; wraps HF fast tokenizers (``llguidance.hf``).
- xgrammar 0.2: also fast, but pulls ``triton`` and ``apache-tvm-ffi`` (GPU-oriented) into a CPU
  install, and compiles each grammar against the vocabulary before its first mask.
- outlines-core 0.2: regex / JSON schema only (no grammar for "text or a tool call"), and builds a
  token index per schema up front, which per-request schemas would pay every time.
- lm-format-enforcer 0.11: pure-Python walk of a token trie per step (slower per token), JSON-schema subset.

JSON is generated compact-but-readable (``", "`` and ``": "``, no free whitespace): with flexible
whitespace a weak model can emit whitespace forever. Schema keywords llguidance does not implement
are refused (400 naming ``response_format.json_schema.schema``) rather than silently ignored.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": ", "lenient": False}
ANY_JSON_OBJECT: dict = {"type": "object"}


class ConstraintError(ValueError):
    """A ``response_format`` / ``tools`` value that cannot be enforced; ``param`` names the field."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


class OutputConstraint(BaseModel):
    """What a row's answer must be. ``grammar`` is an llguidance grammar (JSON string); ``kind`` says how
    the answer is read back: ``json`` (content), ``tool_calls`` (one or more calls) or ``text_or_tool_calls``
    (``tool_choice: auto``)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["json", "tool_calls", "text_or_tool_calls"]
    grammar: str


def json_schema_grammar(schema: dict, param: str = "response_format") -> str:
    """The llguidance grammar of one JSON schema, checked (400 naming ``param`` when it cannot be enforced)."""
    from llguidance import LLMatcher

    try:
        grammar = LLMatcher.grammar_from_json_schema(schema, overrides=JSON_OPTIONS)
    except ValueError as exc:
        raise ConstraintError(f"invalid JSON schema: {exc}", param) from None
    check_grammar(grammar, param)
    return grammar


def check_grammar(grammar: str, param: str) -> None:
    from llguidance import LLMatcher

    error = LLMatcher.validate_grammar(grammar)
    if error:
        raise ConstraintError(f"this schema cannot be enforced: {error}", param)


def parse_response_format(value: Any) -> OutputConstraint | None:
    """OpenAI's ``response_format``: ``text`` (or absent) -> None; ``json_object`` -> any JSON object;
    ``json_schema`` -> ``json_schema.schema`` (``strict`` accepted either way: the schema is always enforced)."""
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise ConstraintError("'response_format' must be an object with a 'type'", "response_format")
    kind = value["type"]
    if kind == "text":
        return None
    if kind == "json_object":
        return OutputConstraint(kind="json", grammar=json_schema_grammar(ANY_JSON_OBJECT))
    if kind != "json_schema":
        raise ConstraintError(f"unsupported response_format type {kind!r}: use 'text', 'json_object' or "
                              "'json_schema'", "response_format.type")
    spec = value.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
        raise ConstraintError("'response_format.json_schema' must be an object with a 'name'",
                              "response_format.json_schema")
    schema = spec.get("schema", ANY_JSON_OBJECT)
    if not isinstance(schema, dict):
        raise ConstraintError("'response_format.json_schema.schema' must be a JSON schema object",
                              "response_format.json_schema.schema")
    if spec.get("strict") not in (None, True, False):
        raise ConstraintError("'response_format.json_schema.strict' must be a boolean",
                              "response_format.json_schema.strict")
    return OutputConstraint(kind="json", grammar=json_schema_grammar(schema, "response_format.json_schema.schema"))
