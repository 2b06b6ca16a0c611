"""Multiple-choice eval rows: choices and an answer (index or text), every bad line named precisely."""
from __future__ import annotations

import json

from contracts.records import parse_eval_file


def jsonl(*rows) -> bytes:
    return "\n".join(json.dumps(r) for r in rows).encode()


def test_answer_by_index_or_by_text_and_output_is_the_right_choice():
    res = parse_eval_file(jsonl({"instruction": "2 + 2 =", "choices": ["3", "4", "5"], "answer": 1},
                                {"instruction": "Capital of France?", "input": "Pick one", "choices": [" Paris", " Rome"],
                                 "answer": " Paris", "id": "q2"},
                                {"instruction": "free text row", "output": "kept as before"}))
    assert res.ok
    first, second, plain = res.records
    assert (first.choices, first.answer, first.output) == (["3", "4", "5"], 1, "4")
    assert (second.input, second.answer, second.output) == ("Pick one", 0, " Paris")
    assert (plain.choices, plain.answer) == (None, None)


def test_bad_choice_rows_name_line_code_and_field():
    rows = [
        {"instruction": "ok", "choices": ["a", "b"], "answer": 0},
        {"instruction": "q", "choices": "a, b", "answer": 0},
        {"instruction": "q", "choices": ["a"], "answer": 0},
        {"instruction": "q", "choices": ["a", 2], "answer": 0},
        {"instruction": "q", "choices": ["a", "  "], "answer": 0},
        {"instruction": "q", "choices": ["a", "a"], "answer": 0},
        {"instruction": "q", "choices": ["a", "b"]},
        {"instruction": "q", "choices": ["a", "b"], "answer": 2},
        {"instruction": "q", "choices": ["a", "b"], "answer": "c"},
        {"instruction": "q", "choices": ["a", "b"], "answer": True},
        {"instruction": "q", "choices": ["a", "b"], "answer": 0, "output": "a"},
        {"choices": ["a", "b"], "answer": 0},
    ]
    res = parse_eval_file(jsonl(*rows))
    assert [(e.line, e.code, e.param) for e in res.errors] == [
        (2, "wrong_type", "choices"), (3, "wrong_type", "choices"), (4, "wrong_type", "choices[1]"),
        (5, "wrong_type", "choices[1]"), (6, "duplicate_choice", "choices"), (7, "missing_field", "answer"),
        (8, "answer_out_of_range", "answer"), (9, "answer_not_in_choices", "answer"), (10, "wrong_type", "answer"),
        (11, "unrecognized_field", "output"), (12, "missing_field", "instruction")]
