"""Chat prompts with tools: OpenAI messages (assistant ``tool_calls``, ``role: "tool"`` results) and
``tools`` rendered through the model's own chat template (``apply_chat_template(..., tools=...)``).

A template that knows tools (Qwen2.5, Llama 3.1, Hermes, SmolLM3 ...) gets them natively: the tools,
the assistant's earlier calls (``arguments`` as a dict, as HF templates expect) and the tool results.
A template that ignores tools (SmolLM2's, and the Alpaca templates of adapters) gets them in words
instead: a system message lists the functions and the ``<tool_call>`` format (``contracts.tools``),
earlier calls become that text in the assistant turn, and tool results become user turns wrapped in
``<tool_response>``. Whether a template knows tools is found by rendering it with and without a probe tool.
"""
from __future__ import annotations

import json
from typing import Any

from contracts.tools import CALL_CLOSE, CALL_OPEN

_PROBE_TOOLS = [{"type": "function", "function": {"name": "probe_tool_zq", "description": "probe",
                                                  "parameters": {"type": "object", "properties": {}}}}]
_KNOWS_TOOLS: dict[int, bool] = {}


def content_text(content: Any) -> str:
    """OpenAI message content: a string, or a list of parts of which the text parts count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    if content is None:
        return ""
    raise ValueError("message content must be a string or a list of text parts")


def _arguments(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _call(call: Any) -> tuple[str, Any]:
    """(name, arguments) of an assistant message's tool call; ValueError (the row's error) when malformed."""
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise ValueError(  # noqa: TRY004 - ValueError is what makes a row's error in the engine
            "an assistant tool call must be {'type': 'function', 'function': {'name', 'arguments'}}")
    return fn["name"], _arguments(fn.get("arguments"))


def template_knows_tools(tokenizer: Any) -> bool:
    key = id(tokenizer)
    if key not in _KNOWS_TOOLS:
        probe = [{"role": "user", "content": "hi"}]
        plain = tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
        try:
            with_tools = tokenizer.apply_chat_template(probe, tools=_PROBE_TOOLS, tokenize=False,
                                                       add_generation_prompt=True)
        except Exception:  # noqa: BLE001 - a template that chokes on tools does not know them
            with_tools = plain
        _KNOWS_TOOLS[key] = with_tools != plain
    return _KNOWS_TOOLS[key]


def native_messages(messages: list[dict]) -> list[dict]:
    """OpenAI messages in the shape HF chat templates take (text content, dict arguments)."""
    out = []
    for m in messages:
        msg: dict[str, Any] = {"role": m.get("role"), "content": content_text(m.get("content"))}
        if m.get("tool_calls"):
            calls = [(c.get("id") if isinstance(c, dict) else None, *_call(c)) for c in m["tool_calls"]]
            msg["tool_calls"] = [{"id": i, "type": "function", "function": {"name": name, "arguments": args}}
                                 for i, name, args in calls]
        for key in ("name", "tool_call_id"):
            if m.get(key) is not None:
                msg[key] = m[key]
        out.append(msg)
    return out


def tools_system_text(tools: list[dict]) -> str:
    functions = "\n".join(json.dumps(t["function"], ensure_ascii=False) for t in tools)
    return ("You may call functions to answer. These are available:\n" + functions + "\n"
            f"To call one, answer only with\n{CALL_OPEN}\n"
            '{"name": <function name>, "arguments": <arguments as a JSON object>}\n'
            f"{CALL_CLOSE}\nOtherwise answer normally.")


def worded_messages(messages: list[dict], tools: list[dict] | None) -> list[dict]:
    """Messages for a template that ignores tools: tools in a system message, calls and results as text."""
    out: list[dict] = []
    for m in messages:
        role, text = m.get("role"), content_text(m.get("content"))
        if m.get("tool_calls"):
            calls = [f"{CALL_OPEN}\n" + json.dumps(dict(zip(("name", "arguments"), _call(c))), ensure_ascii=False)
                     + f"\n{CALL_CLOSE}" for c in m["tool_calls"]]
            text = "\n".join(([text] if text else []) + calls)
        if role == "tool":
            role, text = "user", f"<tool_response>\n{text}\n</tool_response>"
        out.append({"role": role, "content": text})
    if tools:
        system = tools_system_text(tools)
        if out and out[0]["role"] in ("system", "developer"):
            out[0] = {"role": out[0]["role"], "content": out[0]["content"] + "\n\n" + system}
        else:
            out.insert(0, {"role": "system", "content": system})
    return out


def has_tool_turns(messages: list[dict]) -> bool:
    return any(m.get("tool_calls") or m.get("role") == "tool" for m in messages)


def render_chat(messages: list[dict], tokenizer: Any, tools: list[dict] | None = None) -> str:
    """The chat-template text of ``messages`` (with the generation prompt), tools included."""
    if (tools or has_tool_turns(messages)) and template_knows_tools(tokenizer):
        return tokenizer.apply_chat_template(native_messages(messages), tools=tools or None, tokenize=False,
                                             add_generation_prompt=True)
    if tools or has_tool_turns(messages):
        messages = worded_messages(messages, tools)
    plain = [{"role": m.get("role"), "content": content_text(m.get("content"))} for m in messages]
    return tokenizer.apply_chat_template(plain, tokenize=False, add_generation_prompt=True)
