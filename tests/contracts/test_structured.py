"""response_format / tools parsing, grammars and reading tool calls back (no model needed)."""
from __future__ import annotations

import json

import pytest
from llguidance import LLMatcher

from contracts.decoding import DecodeResult
from contracts.structured import ConstraintError, parse_response_format
from contracts.tools import (
    ToolCallStream,
    assistant_message,
    output_knobs,
    parse_tools,
    read_tool_calls,
    with_tool_calls,
)

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def schema_of(grammar: str) -> dict:
    return json.loads(grammar)["grammars"][0]["json_schema"]


def test_response_format_kinds():
    assert parse_response_format(None) is None and parse_response_format({"type": "text"}) is None
    assert schema_of(parse_response_format({"type": "json_object"}).grammar)["type"] == "object"
    fmt = {"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": "array"}, "strict": True}}
    c = parse_response_format(fmt)
    assert c.kind == "json" and schema_of(c.grammar)["type"] == "array" and LLMatcher.validate_grammar(c.grammar) == ""


@pytest.mark.parametrize(("value", "param"), [
    ("json", "response_format"),
    ({"type": "xml"}, "response_format.type"),
    ({"type": "json_schema"}, "response_format.json_schema"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": []}}, "response_format.json_schema.schema"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nope"}}},
     "response_format.json_schema.schema"),
    ({"type": "json_schema", "json_schema": {"name": "x", "strict": "yes"}}, "response_format.json_schema.strict"),
])
def test_bad_response_format_names_the_field(value, param):
    with pytest.raises(ConstraintError) as err:
        parse_response_format(value)
    assert err.value.param == param


def test_tool_choices():
    assert parse_tools(None, None) == (None, None)
    tools, c = parse_tools([WEATHER], None)
    assert tools == [WEATHER] and c.kind == "text_or_tool_calls"  # auto is OpenAI's default with tools
    assert parse_tools([WEATHER], "none") == (None, None)
    assert parse_tools([WEATHER], "required")[1].kind == "tool_calls"
    grammar = parse_tools([WEATHER], {"type": "function", "function": {"name": "get_weather"}})[1].grammar
    assert '"required": ["city"], "additionalProperties": false}' in grammar  # no undeclared arguments


@pytest.mark.parametrize(("tools", "choice", "param"), [
    (None, "required", "tool_choice"),
    ([WEATHER], {"type": "function", "function": {"name": "other"}}, "tool_choice"),
    ([WEATHER], "sometimes", "tool_choice"),
    ([WEATHER], {"type": "function", "function": "get_weather"}, "tool_choice"),
    ({"a": 1}, None, "tools"),
    ([{"type": "retrieval"}], None, "tools[0]"),
    ([WEATHER, WEATHER], None, "tools"),
    ([{"type": "function", "function": {"name": "f", "parameters": "x"}}], None, "tools[0].function.parameters"),
])
def test_bad_tools_name_the_field(tools, choice, param):
    with pytest.raises(ConstraintError) as err:
        parse_tools(tools, choice)
    assert err.value.param == param


def test_output_knobs_refuse_beams_and_tools_without_messages():
    fmt = {"type": "json_object"}
    with pytest.raises(ConstraintError, match="beam") as err:
        output_knobs(True, {"response_format": fmt}, num_beams=2)
    assert err.value.param == "response_format"
    with pytest.raises(ConstraintError) as err:
        output_knobs(False, {"tools": [WEATHER]}, num_beams=1)
    assert err.value.param == "tools"
    assert output_knobs(False, {"response_format": fmt}, 1)["constraint"].kind == "json"
    history = [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"function": "f"}]}]
    with pytest.raises(ConstraintError) as err:
        output_knobs(True, {"messages": history}, 1)
    assert err.value.param == "messages[1].tool_calls"


def test_reading_tool_calls_back():
    text = ('<tool_call>\n{"name": "a", "arguments": {"x": 1}}\n</tool_call>\n'
            '<tool_call>\n{"name": "b", "arguments": {}}\n</tool_call>')
    content, calls = read_tool_calls(text)
    assert content is None and [c["function"]["name"] for c in calls] == ["a", "b"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"x": 1} and calls[0]["type"] == "function"
    assert read_tool_calls("plain text") == ("plain text", [])
    tool_row = parse_tools([WEATHER], "required")[1]
    cut = with_tool_calls(tool_row, DecodeResult(text + '\n<tool_call>\n{"na', "length", 5, 60))
    assert cut.finish_reason == "length" and len(cut.tool_calls) == 2  # the complete calls survive max_tokens
    done = with_tool_calls(tool_row, DecodeResult(text, "stop", 5, 40))
    assert done.finish_reason == "tool_calls"
    message = assistant_message(done)
    assert message["content"] is None and message["tool_calls"] == done.tool_calls
    assert assistant_message(DecodeResult("hi", "stop", 1, 1)) == {"role": "assistant", "content": "hi",
                                                                    "refusal": None}


def test_stream_filter_hides_calls():
    auto = parse_tools([WEATHER], "auto")[1]
    assert [ToolCallStream(auto).visible(d) for d in ["Hello", " there"]] == ["Hello", " there"]
    calling = ToolCallStream(auto)
    assert calling.visible("<tool") == "" and calling.visible("_call>") == ""
    assert ToolCallStream(parse_tools([WEATHER], "required")[1]).visible("<tool_call>") == ""
    assert ToolCallStream(None).visible("<b>") == "<b>"
