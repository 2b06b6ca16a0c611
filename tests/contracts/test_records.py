"""Upload validation: every bad line is named with its number and reason."""
from __future__ import annotations

import json

from contracts.batch_records import parse_batch_file
from contracts.records import parse_eval_file, parse_training_file


def jsonl(*rows) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows).encode()


def test_alpaca_jsonl_and_json_array_and_chat():
    rows = [{"instruction": "a", "input": "", "output": "b"}, {"instruction": "c", "output": "d"}]
    assert parse_training_file(jsonl(*rows)).ok
    res = parse_training_file(json.dumps(rows).encode())
    assert res.ok and [e.line for e in res.records] == [1, 2] and res.format == "alpaca"
    chat = {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
                         {"role": "assistant", "content": "hello"}]}
    res = parse_training_file(jsonl(chat, rows[0]))
    ex = res.records[0]
    assert res.ok and res.format == "alpaca+chat"
    assert (ex.instruction, ex.input, ex.output) == ("hi", "be brief", "hello") and ex.messages


def test_each_bad_line_is_reported_with_number_and_reason():
    data = jsonl({"instruction": "ok", "output": "ok"}, "{broken", {"instruction": "x"}, {"instruction": 3, "output": "y"},
                 {"instruction": "x", "output": ""}, "[1, 2]", {"messages": [{"role": "user", "content": "q"}]},
                 {"messages": [{"role": "robot", "content": "q"}, {"role": "assistant", "content": "a"}]})
    res = parse_training_file(data)
    got = [(e.line, e.code, e.param) for e in res.errors]
    assert got == [(2, "invalid_json", None), (3, "missing_field", "output"), (4, "wrong_type", "instruction"),
                   (5, "empty_field", "output"), (6, "wrong_type", None),
                   (7, "example_missing_assistant_message", "messages"), (8, "unrecognized_role", "messages[0].role")]
    assert len(res.records) == 1 and not res.ok


def test_blank_lines_keep_numbering_and_long_lines_are_refused():
    data = b'{"instruction": "a", "output": "b"}\n\n{"instruction": "' + b"x" * 200 + b'", "output": "b"}\n'
    res = parse_training_file(data, max_line_bytes=100)
    assert [(e.line, e.code) for e in res.errors] == [(3, "line_too_long")]
    assert parse_training_file(b"\n\n").errors[0].code == "empty_file"
    assert parse_training_file(b"\xff\xfe{}\n").errors[0].code == "invalid_encoding"


def test_batch_lines():
    good = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}}
    res = parse_batch_file(jsonl(good, {**good, "custom_id": "a"}, {**good, "custom_id": "b", "url": "/v1/x"},
                                 {k: v for k, v in good.items() if k != "custom_id"},
                                 {**good, "custom_id": "c", "url": "/v1/completions", "body": {"model": "m"}}))
    assert len(res.records) == 1
    assert [(e.line, e.code, e.param) for e in res.errors] == [
        (2, "duplicate_custom_id", "custom_id"), (3, "invalid_url", "url"),
        (4, "missing_required_parameter", "custom_id"), (5, "missing_required_parameter", "body.prompt")]


def test_eval_rows_accept_user_oriented_format():
    row = {"id": "u1", "instruction": "Write a haiku", "instances": [{"input": "", "output": "..."}]}
    res = parse_eval_file(jsonl(row, {"instruction": "no reference"}))
    assert res.ok and res.records[0].output == "..." and res.records[1].output == ""


def test_deeply_nested_lines_are_a_precise_error_not_a_crash():
    deep = b"[" * 100_000 + b"]" * 100_000
    good = b'{"instruction": "a", "output": "b"}'
    res = parse_training_file(good + b"\n" + deep + b"\n" + b'{"instruction": ' * 70 + b"1" + b"}" * 70 + b"\n")
    assert [(e.line, e.code) for e in res.errors] == [(2, "json_too_deep"), (3, "json_too_deep")]
    assert [(e.line, e.code) for e in parse_batch_file(deep).errors] == [(1, "json_too_deep")]  # as a JSON array
    huge_int = b'{"instruction": "a", "output": ' + b"9" * 5000 + b"}"
    assert [(e.line, e.code) for e in parse_eval_file(good + b"\n" + huge_int).errors] == [(2, "invalid_json")]


def test_a_json_array_error_names_its_line():
    res = parse_training_file(b'[\n{"instruction": "a", "output": "b"},\n{oops}\n]')
    assert [(e.line, e.code) for e in res.errors] == [(3, "invalid_json")]
