"""Parse and validate uploaded data files line by line (torch-free; the API uses it at upload).

Accepted training formats, detected per record:
- Alpaca: ``{"instruction", "input"?, "output"}`` (JSON array or JSONL)
- OpenAI chat: ``{"messages": [{"role", "content"}, ...]}`` ending with an assistant message
Batch files: OpenAI Batch lines, in ``contracts.batch_records``.
Eval sets: Alpaca rows, Self-Instruct's ``{"instruction", "instances": [{"input", "output"}]}``, or
multiple-choice rows ``{"instruction", "input"?, "choices": [...], "answer": index or choice}``.

Every problem is a ``LineError`` with a 1-based line number (item number for a JSON array).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

CHAT_ROLES = {"system", "user", "assistant", "developer"}


@dataclass(frozen=True)
class LineError:
    line: int
    code: str
    message: str
    param: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Example:
    """One training/eval example. ``messages`` keeps the chat form when the input was chat."""

    instruction: str
    input: str
    output: str
    messages: list[dict] | None = None
    line: int = 0
    choices: list[str] | None = None  # a multiple-choice eval row's options (``output`` is the right one)
    answer: int | None = None  # index of the right choice

    def as_alpaca(self) -> dict:
        return {"instruction": self.instruction, "input": self.input, "output": self.output}


@dataclass
class ParseResult:
    records: list[Any] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)
    format: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.records)


MAX_JSON_DEPTH = 64  # far beyond any real record; deeper lines are refused before anything walks them
RecordParser = Callable[[Any, int], tuple[Any, LineError | None]]
JsonLines = Iterable[tuple[int, Any, LineError | None]]


def load_json(text: bytes | str, line: int) -> tuple[Any, LineError | None]:
    """(obj, None) or (None, the error naming ``line``): whatever the bytes, this never raises.

    Python's parser recurses per nesting level, so ``[[[[...`` a hundred thousand deep raises
    ``RecursionError`` (and an integer of 5000 digits a plain ``ValueError``); both are the line's fault.
    """
    try:
        obj = json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except UnicodeDecodeError:
        return None, LineError(line, "invalid_encoding", "line is not valid UTF-8")
    except json.JSONDecodeError as exc:  # a line of a JSON document: exc.lineno counts from ``line``
        return None, LineError(line + exc.lineno - 1, "invalid_json", f"not JSON: {exc.msg} at column {exc.colno}")
    except ValueError as exc:  # e.g. an integer past Python's 4300-digit conversion limit
        return None, LineError(line, "invalid_json", f"not JSON: {str(exc).split(':')[0]}")
    except RecursionError:
        return None, _too_deep(line)
    if _nesting_depth(obj, text) > MAX_JSON_DEPTH:
        return None, _too_deep(line)
    return obj, None


def _too_deep(line: int) -> LineError:
    return LineError(line, "json_too_deep", f"JSON is nested more than {MAX_JSON_DEPTH} levels deep")


def _nesting_depth(obj: Any, text: bytes | str) -> int:
    """Depth of lists/objects, walked without recursion; skipped when the text has too few brackets to matter."""
    opening = (b"[", b"{") if isinstance(text, bytes) else ("[", "{")
    if text.count(opening[0]) + text.count(opening[1]) <= MAX_JSON_DEPTH:
        return 0
    deepest, stack = 0, [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                break
            stack.extend((child, depth + 1) for child in children)
    return deepest


def iter_json_lines(data: bytes, max_line_bytes: int = 1 << 20) -> Iterator[tuple[int, Any, LineError | None]]:
    """Yield (line, obj, error) for each non-blank line of a JSONL document (1-based, blank lines counted)."""
    for i, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        if len(raw) > max_line_bytes:
            yield i, None, LineError(i, "line_too_long", f"line is {len(raw)} bytes, over the limit of {max_line_bytes}")
            continue
        yield i, *load_json(raw, i)


def iter_json_records(data: bytes, max_line_bytes: int = 1 << 20) -> Iterator[tuple[int, Any, LineError | None]]:
    """Yield (line, obj, error) for a JSON array (item numbers) or a JSONL document (line numbers)."""
    if data.lstrip()[:1] != b"[":
        yield from iter_json_lines(data, max_line_bytes)
        return
    items, err = load_json(data, 1)
    if err is not None:
        yield err.line, None, err
        return
    for i, obj in enumerate(items, start=1):
        yield i, obj, None


def parse_records(lines: JsonLines, parse_record: RecordParser, max_errors: int = 100) -> ParseResult:
    """The one loop behind every file format: each line through ``parse_record``, errors collected."""
    res = ParseResult()
    for line, obj, err in lines:
        record = None
        if err is None:
            record, err = parse_record(obj, line)
        if err is not None:
            if len(res.errors) < max_errors:
                res.errors.append(err)
            continue
        res.records.append(record)
    if not res.records and not res.errors:
        res.errors.append(LineError(0, "empty_file", "the file has no records"))
    return res


def _str_field(obj: dict, key: str, line: int, required: bool, non_empty: bool) -> tuple[str, LineError | None]:
    if key not in obj or obj[key] is None:
        if required:
            return "", LineError(line, "missing_field", f"missing required field '{key}'", key)
        return "", None
    value = obj[key]
    if not isinstance(value, str):
        return "", LineError(line, "wrong_type", f"field '{key}' must be a string, got {type(value).__name__}", key)
    if non_empty and not value.strip():
        return "", LineError(line, "empty_field", f"field '{key}' is empty", key)
    return value, None


def parse_alpaca_record(obj: Any, line: int) -> tuple[Example | None, LineError | None]:
    if not isinstance(obj, dict):
        return None, LineError(line, "wrong_type", f"each record must be a JSON object, got {type(obj).__name__}")
    if "messages" in obj:
        return parse_chat_record(obj, line)
    unknown = set(obj) - {"instruction", "input", "output", "id", "metadata", "provenance"}
    if unknown:
        return None, LineError(line, "unrecognized_field", f"unrecognized field(s): {sorted(unknown)}", min(unknown))
    instruction, err = _str_field(obj, "instruction", line, required=True, non_empty=True)
    if err:
        return None, err
    inp, err = _str_field(obj, "input", line, required=False, non_empty=False)
    if err:
        return None, err
    output, err = _str_field(obj, "output", line, required=True, non_empty=True)
    if err:
        return None, err
    return Example(instruction, inp, output, line=line), None


def parse_chat_record(obj: dict, line: int) -> tuple[Example | None, LineError | None]:
    msgs = obj.get("messages")
    if not isinstance(msgs, list) or not msgs:
        return None, LineError(line, "missing_messages_list", "'messages' must be a non-empty list", "messages")
    for j, m in enumerate(msgs):
        if not isinstance(m, dict):
            return None, LineError(line, "wrong_type", f"messages[{j}] must be an object", f"messages[{j}]")
        if m.get("role") not in CHAT_ROLES:
            return None, LineError(line, "unrecognized_role", f"messages[{j}].role {m.get('role')!r} is not one of "
                                   f"{sorted(CHAT_ROLES)}", f"messages[{j}].role")
        if not isinstance(m.get("content"), str):
            return None, LineError(line, "missing_content", f"messages[{j}].content must be a string",
                                   f"messages[{j}].content")
    if msgs[-1]["role"] != "assistant" or not msgs[-1]["content"].strip():
        return None, LineError(line, "example_missing_assistant_message",
                               "the last message must be a non-empty assistant message", "messages")
    users = [m["content"] for m in msgs[:-1] if m["role"] == "user"]
    if not users:
        return None, LineError(line, "missing_user_message", "a chat example needs a user message", "messages")
    system = "\n".join(m["content"] for m in msgs[:-1] if m["role"] in ("system", "developer"))
    return Example(instruction=users[-1], input=system, output=msgs[-1]["content"],
                   messages=msgs, line=line), None


def parse_training_file(data: bytes, max_line_bytes: int = 1 << 20, max_errors: int = 100) -> ParseResult:
    """Parse a fine-tune file (Alpaca JSON/JSONL or OpenAI chat JSONL); collect per-line errors."""
    res = parse_records(iter_json_records(data, max_line_bytes), parse_alpaca_record, max_errors)
    res.format = "+".join(sorted({"chat" if ex.messages else "alpaca" for ex in res.records}))
    return res


MAX_CHOICES = 64


def parse_choice_record(obj: dict, line: int) -> tuple[Example | None, LineError | None]:
    """A multiple-choice eval row ``{"instruction", "input"?, "choices": [str, ...], "answer": index or
    choice text}``; its ``output`` is the right choice, so generation metrics compare against it too."""
    unknown = set(obj) - {"instruction", "input", "choices", "answer", "id", "metadata"}
    if unknown:
        return None, LineError(line, "unrecognized_field", f"unrecognized field(s) in a multiple-choice row: "
                               f"{sorted(unknown)}", min(unknown))
    instruction, err = _str_field(obj, "instruction", line, required=True, non_empty=True)
    if err:
        return None, err
    inp, err = _str_field(obj, "input", line, required=False, non_empty=False)
    if err:
        return None, err
    choices = obj["choices"]
    if not isinstance(choices, list) or not 2 <= len(choices) <= MAX_CHOICES:
        return None, LineError(line, "wrong_type", f"'choices' must be a list of 2 to {MAX_CHOICES} strings", "choices")
    for j, choice in enumerate(choices):
        if not isinstance(choice, str) or not choice.strip():
            return None, LineError(line, "wrong_type", f"choices[{j}] must be a non-empty string", f"choices[{j}]")
    if len(set(choices)) < len(choices):
        return None, LineError(line, "duplicate_choice", "'choices' repeat a choice", "choices")
    if "answer" not in obj or obj["answer"] is None:
        return None, LineError(line, "missing_field", "missing required field 'answer' (index or choice text)", "answer")
    answer = obj["answer"]
    if isinstance(answer, str):
        if answer not in choices:
            return None, LineError(line, "answer_not_in_choices", f"'answer' {answer!r} is not one of 'choices'",
                                   "answer")
        answer = choices.index(answer)
    elif isinstance(answer, bool) or not isinstance(answer, int):
        return None, LineError(line, "wrong_type", f"'answer' must be an index or a choice's text, got "
                               f"{type(answer).__name__}", "answer")
    elif not 0 <= answer < len(choices):
        return None, LineError(line, "answer_out_of_range", f"'answer' {answer} is not an index of the "
                               f"{len(choices)} choices", "answer")
    return Example(instruction, inp, choices[answer], line=line, choices=list(choices), answer=answer), None


def parse_eval_record(obj: Any, line: int) -> tuple[Example | None, LineError | None]:
    """Eval rows: Alpaca rows, Self-Instruct user-oriented rows with ``instances``, or multiple-choice rows."""
    if isinstance(obj, dict) and "choices" in obj:
        return parse_choice_record(obj, line)
    if isinstance(obj, dict) and "instances" in obj:
        inst = obj["instances"]
        if not isinstance(inst, list) or not inst or not isinstance(inst[0], dict):
            return None, LineError(line, "wrong_type", "'instances' must be a non-empty list of objects", "instances")
        instruction, err = _str_field(obj, "instruction", line, required=True, non_empty=True)
        if err:
            return None, err
        return Example(instruction, str(inst[0].get("input", "") or ""), str(inst[0].get("output", "") or ""),
                       line=line), None
    if isinstance(obj, dict) and "output" not in obj and "messages" not in obj:
        instruction, err = _str_field(obj, "instruction", line, required=True, non_empty=True)
        if err:
            return None, err
        inp, err = _str_field(obj, "input", line, required=False, non_empty=False)
        return (None, err) if err else (Example(instruction, inp, "", line=line), None)
    return parse_alpaca_record(obj, line)


def parse_eval_file(data: bytes, max_line_bytes: int = 1 << 20, max_errors: int = 100) -> ParseResult:
    res = parse_records(iter_json_records(data, max_line_bytes), parse_eval_record, max_errors)
    res.format = "eval"
    return res
