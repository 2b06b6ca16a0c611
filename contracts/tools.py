"""OpenAI function tools: ``tools`` / ``tool_choice`` -> the row's grammar; answers -> ``tool_calls`` (torch-free).

A tool call is generated in the Hermes format that Qwen2.5, Hermes and SmolLM3 chat templates teach::

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

``tool_choice``:
- ``required`` / a named function: the answer is constrained to one or more such calls (one when
  ``parallel_tool_calls`` is false) whose ``arguments`` validate against that tool's ``parameters``
  (an object schema without ``additionalProperties`` gets ``false``: no undeclared arguments);
- ``auto`` (the default when tools are given): the answer is constrained to *either* plain text (which
  then may not start with ``<``) *or* tool calls; which one is the model's choice. A model whose template
  and training do not know this format (or tools at all) will mostly answer in text: ``auto`` then does
  what the model does, it is not forced;
- ``none``: the tools are not shown and the answer is unconstrained text.

The answer's text is read back by ``with_tool_calls`` into OpenAI's ``message.tool_calls``
(``finish_reason: "tool_calls"``); ``ToolCallStream`` keeps the call's raw text out of streamed content.
"""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import replace
from typing import Any

from contracts.structured import (
    JSON_OPTIONS,
    ConstraintError,
    OutputConstraint,
    check_grammar,
    parse_response_format,
)

CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
_CALL_RE = re.compile(re.escape(CALL_OPEN) + r"\s*(.*?)\s*" + re.escape(CALL_CLOSE), re.DOTALL)
NO_PARAMETERS: dict = {"type": "object", "properties": {}, "additionalProperties": False}


def parse_tools(tools: Any, tool_choice: Any, parallel_tool_calls: Any = None,
                answer: OutputConstraint | None = None) -> tuple[list[dict] | None, OutputConstraint | None]:
    """(tools to show in the prompt, the constraint of the answer) for a chat body's ``tools``,
    ``tool_choice`` and ``parallel_tool_calls``; ``answer`` is the ``response_format`` constraint, kept
    for the text branch of ``auto`` and for ``none``."""
    if tools in (None, []):
        if tool_choice not in (None, "none", "auto"):
            raise ConstraintError("'tool_choice' needs 'tools'", "tool_choice")
        return None, answer
    functions = _check_tools(tools)
    choice = "auto" if tool_choice is None else tool_choice
    if choice == "none":
        return None, answer
    if parallel_tool_calls not in (None, True, False):
        raise ConstraintError("'parallel_tool_calls' must be a boolean", "parallel_tool_calls")
    many = parallel_tool_calls is not False
    if choice == "auto":
        grammar = tool_grammar(functions, many, auto=True, answer=answer)
        return tools, OutputConstraint(kind="text_or_tool_calls", grammar=grammar)
    if choice == "required":
        return tools, OutputConstraint(kind="tool_calls", grammar=tool_grammar(functions, many))
    fn = choice.get("function") if isinstance(choice, dict) else None
    name = fn.get("name") if isinstance(fn, dict) else None
    if not isinstance(choice, dict) or choice.get("type") != "function" or not isinstance(name, str):
        raise ConstraintError("'tool_choice' must be 'none', 'auto', 'required' or "
                              '{"type": "function", "function": {"name": ...}}', "tool_choice")
    chosen = [f for f in functions if f["name"] == name]
    if not chosen:
        raise ConstraintError(f"'tool_choice' names {name!r}, which is not in 'tools'", "tool_choice")
    return tools, OutputConstraint(kind="tool_calls", grammar=tool_grammar(chosen, many))


def _check_tools(tools: Any) -> list[dict]:
    """The ``function`` objects of ``tools`` (each with a name and a parameters schema), or a 400."""
    if not isinstance(tools, list):
        raise ConstraintError("'tools' must be a list of tool objects", "tools")
    functions = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
            raise ConstraintError(f"tools[{i}] must be {{'type': 'function', 'function': {{...}}}}", f"tools[{i}]")
        name = fn.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", name):
            raise ConstraintError(f"tools[{i}].function.name must be 1-64 letters, digits, '_', '-', '.' or ':'",
                                  f"tools[{i}].function.name")
        params = fn.get("parameters") or NO_PARAMETERS
        if not isinstance(params, dict):
            raise ConstraintError(f"tools[{i}].function.parameters must be a JSON schema object",
                                  f"tools[{i}].function.parameters")
        if params.get("type") == "object" and "additionalProperties" not in params:
            params = {**params, "additionalProperties": False}  # a function takes no arguments it does not declare
        functions.append({"name": name, "parameters": params})
    if len({f["name"] for f in functions}) < len(functions):
        raise ConstraintError("tool names must be unique", "tools")
    return functions


def call_schema(functions: list[dict]) -> dict:
    """The JSON schema of one call: ``{"name": <one of the tools>, "arguments": <its parameters>}``."""
    options = [{"type": "object", "properties": {"name": {"const": f["name"]}, "arguments": f["parameters"]},
                "required": ["name", "arguments"], "additionalProperties": False} for f in functions]
    schema = options[0] if len(options) == 1 else {"anyOf": options}
    return {**schema, "x-guidance": JSON_OPTIONS}


def tool_grammar(functions: list[dict], many: bool = True, auto: bool = False,
                 answer: OutputConstraint | None = None) -> str:
    """An llguidance (Lark) grammar: tool calls only, or - for ``auto`` - text (the ``response_format``
    JSON when ``answer`` is given) *or* tool calls."""
    from llguidance import LLMatcher

    call = f'call: "{CALL_OPEN}\\n" %json {json.dumps(call_schema(functions))} "\\n{CALL_CLOSE}"'
    calls = 'calls: call ("\\n" call)*' if many else "calls: call"
    lines = [calls, call]
    if auto and answer is not None:
        lines = ["start: answer | calls", "answer: " + _json_of(answer.grammar), *lines]
    elif auto:
        lines = ["start: TEXT | calls", r"TEXT: /([^<][\s\S]*)?/", *lines]
    else:
        lines = ["start: calls", *lines]
    grammar = LLMatcher.grammar_from_lark("\n".join(lines) + "\n")
    check_grammar(grammar, "tools")
    return grammar


def _json_of(grammar: str) -> str:
    """``%json {schema}`` of a JSON-schema grammar made by ``contracts.structured``."""
    schema = json.loads(grammar)["grammars"][0]["json_schema"]
    return "%json " + json.dumps(schema)


def read_tool_calls(text: str) -> tuple[str | None, list[dict]]:
    """(content before the calls or None, OpenAI ``tool_calls``) of a generated answer."""
    calls = []
    for m in _CALL_RE.finditer(text):
        try:
            call = json.loads(m.group(1))
        except ValueError:
            continue
        if isinstance(call, dict) and isinstance(call.get("name"), str):
            calls.append({"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                          "function": {"name": call["name"],
                                       "arguments": json.dumps(call.get("arguments", {}), ensure_ascii=False)}})
    if not calls:
        return text, []
    content = text[:text.find(CALL_OPEN)].strip()
    return content or None, calls


def with_tool_calls(constraint: OutputConstraint | None, result):
    """A finished ``DecodeResult`` of a tool row, with ``tool_calls`` read from its text: finish ``tool_calls``,
    or ``length`` when ``max_tokens`` cut a later call (the complete calls before it are kept)."""
    if constraint is None or constraint.kind == "json" or result.finish_reason not in ("stop", "length"):
        return result
    content, calls = read_tool_calls(result.text)
    if not calls:
        return result
    finish = "tool_calls" if result.finish_reason == "stop" else "length"
    return replace(result, text=content or "", tool_calls=calls, finish_reason=finish)


def assistant_message(result) -> dict:
    """A chat choice's ``message``: content, or ``tool_calls`` (content null) in OpenAI's shape."""
    calls = getattr(result, "tool_calls", None)
    message = {"role": "assistant", "content": (result.text or None) if calls else result.text, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    return message


def tool_call_deltas(result) -> list[dict]:
    """The ``delta.tool_calls`` items of a stream (one chunk item per call, arguments whole)."""
    return [{"index": i, **call} for i, call in enumerate(getattr(result, "tool_calls", None) or [])]


class ToolCallStream:
    """Per-choice filter of streamed text: a tool call's raw text is not content (it is sent as
    ``tool_calls`` when the row finishes). Under ``auto`` the first character decides (text never
    starts with ``<``)."""

    def __init__(self, constraint: OutputConstraint | None) -> None:
        self.kind = constraint.kind if constraint is not None else None
        self.calling = self.kind == "tool_calls"
        self.started = False

    def visible(self, delta: str) -> str:
        if self.kind == "text_or_tool_calls" and not self.started and delta:
            self.started = True
            self.calling = delta.startswith("<")
        return "" if self.calling else delta


def output_knobs(chat: bool, body: dict, num_beams: int) -> dict:
    """The ``tools`` and ``constraint`` DecodeRequest fields of an OpenAI body (``response_format``,
    ``tools``, ``tool_choice``, ``parallel_tool_calls``); a ConstraintError names the field."""
    answer = parse_response_format(body.get("response_format"))
    if chat and isinstance(body.get("messages"), list):
        check_tool_history(body["messages"])
    if not chat and body.get("tools") not in (None, []):
        raise ConstraintError("'tools' needs chat messages (/v1/chat/completions)", "tools")
    tools, constraint = parse_tools(body.get("tools"), body.get("tool_choice"), body.get("parallel_tool_calls"),
                                    answer) if chat else (None, answer)
    if constraint is not None and num_beams > 1:
        param = "response_format" if constraint is answer else "tools"
        raise ConstraintError(f"'{param}' cannot be enforced with beam search (num_beams > 1)", param)
    return {"tools": tools, "constraint": constraint}


def check_tool_history(messages: list) -> None:
    """Earlier assistant ``tool_calls`` must be a list of ``{"function": {"name", "arguments"}}``."""
    for i, m in enumerate(messages):
        calls = m.get("tool_calls") if isinstance(m, dict) else None
        if calls is None:
            continue
        fns = [c.get("function") if isinstance(c, dict) else None for c in calls] if isinstance(calls, list) else [None]
        if not all(isinstance(f, dict) and isinstance(f.get("name"), str) for f in fns):
            raise ConstraintError("tool_calls must be a list of {'type': 'function', 'function': {'name', "
                                  "'arguments'}}", f"messages[{i}].tool_calls")


def tool_calls_chunk(response_id: str, created: int, model: str, index: int, result) -> dict | None:
    """The ``chat.completion.chunk`` carrying a finished choice's ``tool_calls`` (None when it has none)."""
    calls = tool_call_deltas(result)
    if not calls:
        return None
    return {"id": response_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": index, "delta": {"tool_calls": calls}, "logprobs": None, "finish_reason": None}]}
