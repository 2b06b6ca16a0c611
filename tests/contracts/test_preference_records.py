"""DPO files: OpenAI's lines and Alpaca-style pairs parse into pairs rendered like SFT examples; every
malformed line is named with its number, field and reason; fine-tune uploads are told apart by their first record."""
from __future__ import annotations

import json

from contracts.preference_records import (
    is_preference_format,
    parse_fine_tune_file,
    parse_preference_file,
)


def jsonl(*rows) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows).encode() + b"\n"


OPENAI = {"input": {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}]},
          "preferred_output": [{"role": "assistant", "content": "Paris."}],
          "non_preferred_output": [{"role": "assistant", "content": "I think it might be Lyon."}]}
ALPACA = {"instruction": "Name a colour.", "input": "", "chosen": "Blue.", "rejected": "Seven."}


def test_both_formats_parse_into_pairs_rendered_like_sft_examples():
    res = parse_preference_file(jsonl(OPENAI, ALPACA))
    assert res.ok and res.format == "dpo_alpaca+dpo_chat" and is_preference_format(res.format)
    chat, alpaca = res.records
    assert (chat.instruction, chat.input, chat.chosen, chat.rejected, chat.line) == (
        "Capital of France?", "Be brief.", "Paris.", "I think it might be Lyon.", 1)
    assert chat.chosen_example().messages[-1] == {"role": "assistant", "content": "Paris."}
    assert chat.rejected_example().output == "I think it might be Lyon."
    assert chat.chosen_example().messages[:-1] == OPENAI["input"]["messages"]
    assert alpaca.chosen_example().as_alpaca() == {"instruction": "Name a colour.", "input": "", "output": "Blue."}
    assert alpaca.rejected_example().messages is None and alpaca.line == 2
    assert parse_preference_file(json.dumps([ALPACA, ALPACA]).encode()).ok
    assert not is_preference_format("alpaca") and not is_preference_format("chat+dpo_chat")


def test_malformed_lines_are_named_by_number_and_field():
    bad = [
        ({**OPENAI, "preferred_output": []}, "wrong_type", "preferred_output"),
        ({**OPENAI, "preferred_output": [{"role": "user", "content": "x"}]}, "unrecognized_role",
         "preferred_output[0].role"),
        ({**OPENAI, "non_preferred_output": [{"role": "assistant", "content": " "}]}, "missing_content",
         "non_preferred_output[0].content"),
        ({k: v for k, v in OPENAI.items() if k != "non_preferred_output"}, "missing_field", "non_preferred_output"),
        ({**OPENAI, "input": {"messages": [{"role": "wizard", "content": "x"}]}}, "unrecognized_role",
         "input.messages[0].role"),
        ({**OPENAI, "input": {"messages": []}}, "missing_messages_list", "input.messages"),
        ({**OPENAI, "input": {"messages": [{"role": "system", "content": "x"}]}}, "missing_user_message",
         "input.messages"),
        ({**OPENAI, "input": {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}},
         "wrong_role", "input.messages"),
        ({**OPENAI, "input": {"messages": OPENAI["input"]["messages"], "tools": []}}, "unrecognized_field",
         "input.tools"),
        ({**OPENAI, "non_preferred_output": OPENAI["preferred_output"]}, "identical_outputs", "non_preferred_output"),
        ({**ALPACA, "chosen": 3}, "wrong_type", "chosen"),
        ({**ALPACA, "rejected": ""}, "empty_field", "rejected"),
        ({"instruction": "x", "chosen": "a"}, "missing_field", "rejected"),
        ({**ALPACA, "rejected": "Blue."}, "identical_outputs", "rejected"),
        ({**ALPACA, "output": "x"}, "unrecognized_field", "output"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "not_a_preference_pair", "preferred_output"),
    ]
    res = parse_preference_file(jsonl(ALPACA, *[row for row, _, _ in bad], "{not json"))
    assert len(res.records) == 1
    got = [(e.line, e.code, e.param) for e in res.errors]
    want = [(i + 2, code, param) for i, (_, code, param) in enumerate(bad)] + [(len(bad) + 2, "invalid_json", None)]
    assert got == want


def test_fine_tune_uploads_are_told_apart_by_their_first_record():
    assert parse_fine_tune_file(jsonl(ALPACA, OPENAI)).format == "dpo_alpaca+dpo_chat"
    sft = parse_fine_tune_file(jsonl({"instruction": "a", "output": "b"}))
    assert sft.ok and sft.format == "alpaca"
    mixed = parse_fine_tune_file(jsonl(OPENAI, {"instruction": "a", "output": "b"}))
    assert [(e.line, e.code, e.param) for e in mixed.errors] == [(2, "unrecognized_field", "output")]
    sft_then_pair = parse_fine_tune_file(jsonl({"instruction": "a", "output": "b"}, ALPACA))
    assert [(e.line, e.code) for e in sft_then_pair.errors] == [(2, "unrecognized_field")]
