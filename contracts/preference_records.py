"""Preference (DPO) training files, parsed and validated line by line (torch-free; the API uses it at upload).

Two line formats, detected per record:
- OpenAI's DPO lines: ``{"input": {"messages": [...]}, "preferred_output": [{"role": "assistant",
  "content": ...}], "non_preferred_output": [{"role": "assistant", "content": ...}]}``
- Alpaca-style pairs: ``{"instruction", "input"?, "chosen", "rejected"}``

A pair becomes two ``contracts.records.Example`` rows sharing one prompt (``chosen_example`` /
``rejected_example``), so DPO renders and tokenizes exactly as supervised fine-tuning does. Every
problem is a ``LineError`` with a 1-based line number, as for SFT files. Files of purpose
``fine-tune`` hold either kind: ``parse_fine_tune_file`` looks at the first record to tell which.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contracts.records import (
    Example,
    LineError,
    ParseResult,
    iter_json_records,
    parse_chat_record,
    parse_records,
    parse_training_file,
)

OPENAI_KEYS = {"input", "preferred_output", "non_preferred_output"}
ALPACA_KEYS = {"instruction", "input", "chosen", "rejected"}
PREFERENCE_MARKERS = {"preferred_output", "non_preferred_output", "chosen", "rejected"}
IGNORED_KEYS = {"id", "metadata"}
PREFERENCE_FORMAT_PREFIX = "dpo_"


@dataclass
class PreferencePair:
    """One prompt with a preferred and a non-preferred answer. ``messages`` holds the prompt turns of
    OpenAI's form (None for an Alpaca-style pair)."""

    instruction: str
    input: str
    chosen: str
    rejected: str
    messages: list[dict] | None = None
    line: int = 0

    def _example(self, output: str) -> Example:
        msgs = None if self.messages is None else [*self.messages, {"role": "assistant", "content": output}]
        return Example(self.instruction, self.input, output, messages=msgs, line=self.line)

    def chosen_example(self) -> Example:
        return self._example(self.chosen)

    def rejected_example(self) -> Example:
        return self._example(self.rejected)


def is_preference_format(file_format: str | None) -> bool:
    """True for the ``format`` a preference file gets at upload (``dpo_chat``, ``dpo_alpaca`` or both)."""
    return bool(file_format) and all(part.startswith(PREFERENCE_FORMAT_PREFIX) for part in file_format.split("+"))


def _answer(obj: dict, key: str, line: int) -> tuple[str, LineError | None]:
    """The one assistant message of ``preferred_output`` / ``non_preferred_output``."""
    value = obj.get(key)
    if value is None:
        return "", LineError(line, "missing_field", f"missing required field '{key}'", key)
    if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], dict):
        return "", LineError(line, "wrong_type", f"'{key}' must be a list holding one assistant message", key)
    msg = value[0]
    if msg.get("role") != "assistant":
        return "", LineError(line, "unrecognized_role", f"{key}[0].role must be 'assistant', got {msg.get('role')!r}",
                             f"{key}[0].role")
    if not isinstance(msg.get("content"), str) or not msg["content"].strip():
        return "", LineError(line, "missing_content", f"{key}[0].content must be a non-empty string",
                             f"{key}[0].content")
    return msg["content"], None


def parse_openai_pair(obj: dict, line: int) -> tuple[PreferencePair | None, LineError | None]:
    unknown = set(obj) - OPENAI_KEYS - IGNORED_KEYS
    if unknown:
        return None, LineError(line, "unrecognized_field", f"unrecognized field(s): {sorted(unknown)}", min(unknown))
    prompt = obj.get("input")
    if not isinstance(prompt, dict) or "messages" not in prompt:
        return None, LineError(line, "missing_field", "'input' must be an object with 'messages'", "input.messages")
    if set(prompt) - {"messages"}:
        extra = sorted(set(prompt) - {"messages"})
        return None, LineError(line, "unrecognized_field", f"unrecognized field(s) in 'input': {extra}",
                               f"input.{extra[0]}")
    chosen, err = _answer(obj, "preferred_output", line)
    if err:
        return None, err
    rejected, err = _answer(obj, "non_preferred_output", line)
    if err:
        return None, err
    msgs = prompt["messages"]
    if not isinstance(msgs, list) or not msgs:
        return None, LineError(line, "missing_messages_list", "'input.messages' must be a non-empty list",
                               "input.messages")
    if isinstance(msgs[-1], dict) and msgs[-1].get("role") == "assistant":
        return None, LineError(line, "wrong_role", "input.messages must end with a user turn (the answers are "
                               "preferred_output and non_preferred_output)", "input.messages")
    example, err = parse_chat_record({"messages": [*msgs, {"role": "assistant", "content": chosen}]}, line)
    if err:
        return None, LineError(err.line, err.code, err.message.replace("messages", "input.messages", 1),
                               f"input.{err.param}" if err.param else "input.messages")
    if chosen == rejected:
        return None, LineError(line, "identical_outputs", "preferred_output and non_preferred_output are the same "
                               "answer: the pair teaches nothing", "non_preferred_output")
    return PreferencePair(example.instruction, example.input, chosen, rejected, messages=msgs, line=line), None


def _text(obj: dict, key: str, line: int, required: bool) -> tuple[str, LineError | None]:
    value = obj.get(key)
    if value is None:
        return "", (LineError(line, "missing_field", f"missing required field '{key}'", key) if required else None)
    if not isinstance(value, str):
        return "", LineError(line, "wrong_type", f"field '{key}' must be a string, got {type(value).__name__}", key)
    if required and not value.strip():
        return "", LineError(line, "empty_field", f"field '{key}' is empty", key)
    return value, None


def parse_alpaca_pair(obj: dict, line: int) -> tuple[PreferencePair | None, LineError | None]:
    unknown = set(obj) - ALPACA_KEYS - IGNORED_KEYS
    if unknown:
        return None, LineError(line, "unrecognized_field", f"unrecognized field(s): {sorted(unknown)}", min(unknown))
    values = {}
    for key, required in (("instruction", True), ("input", False), ("chosen", True), ("rejected", True)):
        values[key], err = _text(obj, key, line, required)
        if err:
            return None, err
    if values["chosen"] == values["rejected"]:
        return None, LineError(line, "identical_outputs", "'chosen' and 'rejected' are the same answer: the pair "
                               "teaches nothing", "rejected")
    return PreferencePair(values["instruction"], values["input"], values["chosen"], values["rejected"], line=line), None


def parse_preference_record(obj: Any, line: int) -> tuple[PreferencePair | None, LineError | None]:
    if not isinstance(obj, dict):
        return None, LineError(line, "wrong_type", f"each record must be a JSON object, got {type(obj).__name__}")
    if isinstance(obj.get("input"), dict) or {"preferred_output", "non_preferred_output"} & set(obj):
        return parse_openai_pair(obj, line)
    if {"chosen", "rejected"} & set(obj) or "instruction" in obj:
        return parse_alpaca_pair(obj, line)
    return None, LineError(line, "not_a_preference_pair", "a preference line needs input.messages, preferred_output "
                           "and non_preferred_output (OpenAI's DPO format), or instruction, chosen and rejected",
                           "preferred_output")


def parse_preference_file(data: bytes, max_line_bytes: int = 1 << 20, max_errors: int = 100) -> ParseResult:
    """Parse a DPO file (OpenAI's lines or Alpaca-style pairs, JSONL or a JSON array); per-line errors."""
    res = parse_records(iter_json_records(data, max_line_bytes), parse_preference_record, max_errors)
    res.format = "+".join(sorted({"dpo_chat" if p.messages is not None else "dpo_alpaca" for p in res.records}))
    return res


def looks_like_preference_file(data: bytes, max_line_bytes: int = 1 << 20) -> bool:
    """Whether the first JSON object of the file carries a preference key (the file's kind is decided by it)."""
    for _, obj, err in iter_json_records(data, max_line_bytes):
        if err is None and isinstance(obj, dict):
            return bool(PREFERENCE_MARKERS & set(obj))
    return False


def parse_fine_tune_file(data: bytes, max_line_bytes: int = 1 << 20, max_errors: int = 100) -> ParseResult:
    """A ``fine-tune`` upload: preference pairs when its first record is one, else SFT examples."""
    if looks_like_preference_file(data, max_line_bytes):
        return parse_preference_file(data, max_line_bytes, max_errors)
    return parse_training_file(data, max_line_bytes, max_errors)
