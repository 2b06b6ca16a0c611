"""Constrained decoding in the engine's batched loop (tiny random LLaMA: the mask alone makes answers valid)."""
from __future__ import annotations

import json

import jsonschema_rs
import pytest

from contracts.decoding import DecodeRequest
from contracts.structured import parse_response_format
from contracts.tools import parse_tools
from worker.ml.decoding.engine import InferenceEngine

PERSON = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 8},
                                           "age": {"type": "integer", "minimum": 0, "maximum": 120}},
          "required": ["name", "age"], "additionalProperties": False}
FLAGS = {"type": "object", "properties": {"ok": {"type": "boolean"},
                                          "tags": {"type": "array", "items": {"enum": ["red", "green", "blue"]},
                                                   "maxItems": 3}},
         "required": ["ok", "tags"], "additionalProperties": False}
SMALL_INTS = {"type": "array", "items": {"type": "integer", "minimum": -5, "maximum": 5}, "minItems": 1, "maxItems": 4}
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                            "parameters": {"type": "object", "properties": {
                                                "city": {"enum": ["Paris", "Oslo", "Lima"]},
                                                "days": {"type": "integer", "minimum": 1, "maximum": 7}},
                                                "required": ["city", "days"], "additionalProperties": False}}}
CLOCK = {"type": "function", "function": {"name": "now", "description": "The time"}}
MESSAGES = [{"role": "user", "content": "Answer in JSON."}]


@pytest.fixture(scope="module")
def engine(tiny_llama_dir):
    return InferenceEngine(tiny_llama_dir, device="cpu", dtype="float32")


def schema_row(schema: dict, **kw) -> DecodeRequest:
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}
    return DecodeRequest(messages=MESSAGES, constraint=parse_response_format(fmt), max_new_tokens=64, **kw)


def valid(schema: dict, text: str) -> bool:
    return jsonschema_rs.validator_for(schema).is_valid(json.loads(text))


def test_rows_of_different_schemas_and_an_unconstrained_row_share_a_batch(engine):
    schemas = [PERSON, FLAGS, SMALL_INTS, PERSON]
    rows = [schema_row(s, temperature=t, seed=3) for s, t in zip(schemas, (0, 1.0, 1.0, 0.7))]
    free = DecodeRequest(messages=MESSAGES, max_new_tokens=12, temperature=0)
    results = engine.generate([rows[0], free, *rows[1:]])
    for schema, res in zip(schemas, [results[0], *results[2:]]):
        assert res.finish_reason == "stop" and valid(schema, res.text), res.text
    assert results[1].text == engine.generate([free])[0].text  # the unconstrained row is untouched by the masks
    assert not results[1].text.startswith(("{", "["))  # and the random model does not write JSON by itself


def test_twenty_json_schema_requests_at_temperature_one_all_validate(engine):
    rows = [schema_row([PERSON, FLAGS][i % 2], temperature=1.0, seed=i) for i in range(20)]
    results = engine.generate(rows)
    assert all(r.finish_reason == "stop" for r in results), [r.text for r in results]
    assert all(valid([PERSON, FLAGS][i % 2], r.text) for i, r in enumerate(results))
    assert len({r.text for r in results}) > 10  # sampled, not one forced answer


def test_json_object_answer_is_a_json_object(engine):
    fmt = parse_response_format({"type": "json_object"})
    res = engine.generate([DecodeRequest(prompt="{}", constraint=fmt, max_new_tokens=3, temperature=0)])[0]
    assert res.text.startswith("{")  # cut by max_tokens (the random model never closes it) but JSON from token 1


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "get_weather"}}])
def test_forced_tool_call_has_valid_arguments(engine, choice):
    tools, constraint = parse_tools([WEATHER, CLOCK], choice, parallel_tool_calls=False)
    res = engine.generate([DecodeRequest(messages=MESSAGES, tools=tools, constraint=constraint, max_new_tokens=48,
                                         temperature=1.0, seed=s) for s in range(4)])
    for r in res:
        assert r.finish_reason == "tool_calls" and len(r.tool_calls) == 1 and r.text == ""
        call = r.tool_calls[0]
        assert call["type"] == "function" and call["id"].startswith("call_")
        if isinstance(choice, dict):
            assert call["function"]["name"] == "get_weather"
        params = {"get_weather": WEATHER, "now": {"function": {"parameters": {"type": "object", "maxProperties": 0}}}}
        assert valid(params[call["function"]["name"]]["function"]["parameters"], call["function"]["arguments"])


def test_auto_lets_the_model_answer_in_text(engine):
    tools, constraint = parse_tools([WEATHER], "auto")
    free = DecodeRequest(messages=MESSAGES, tools=tools, max_new_tokens=8, temperature=0)
    res = engine.generate([free.model_copy(update={"constraint": constraint})])[0]
    assert res.finish_reason == "length" and res.tool_calls is None and res.text


def test_auto_with_a_response_format_answers_schema_json_or_a_call(engine):
    fmt = parse_response_format({"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}})
    tools, constraint = parse_tools([WEATHER], "auto", parallel_tool_calls=False, answer=fmt)
    rows = [DecodeRequest(messages=MESSAGES, tools=tools, constraint=constraint, max_new_tokens=64, temperature=1.0,
                          seed=s) for s in range(6)]
    for r in engine.generate(rows):
        if r.tool_calls:
            assert r.finish_reason == "tool_calls"
            assert valid(WEATHER["function"]["parameters"], r.tool_calls[0]["function"]["arguments"])
        else:
            assert r.finish_reason == "stop" and valid(PERSON, r.text), r.text
