"""Batch lines with response_format and tools (the same parse_openai_body / engine / completion_body path)."""
from __future__ import annotations

import json

import jsonschema_rs

from contracts.batch_records import BatchRequest
from contracts.decoding import ModelTarget
from tests.worker.ml.decoding import engine_helpers as helpers
from tests.worker.ml.decoding.test_constraints import FLAGS, PERSON, WEATHER
from worker.ml.evaluation.batch_run import run_batch

tiny_adapters, tiny_engine = helpers.tiny_adapters, helpers.tiny_engine  # shared fixtures


def line(custom_id: str, model: str, **kw) -> BatchRequest:
    body = {"model": model, "messages": [{"role": "user", "content": "JSON please"}], "max_tokens": 64,
            "temperature": 1.0, "seed": 11, **kw}
    return BatchRequest(0, custom_id, "/v1/chat/completions", body)


def test_batch_lines_of_different_schemas_and_tools(tiny_engine, tiny_adapters):
    targets = {"base": ModelTarget("base", None), "ft-a": ModelTarget("ft-a", tiny_adapters["A"])}
    schemas = {"person": PERSON, "flags": FLAGS}
    requests = [line(name, model, response_format={"type": "json_schema",
                                                   "json_schema": {"name": name, "schema": schema}})
                for (name, schema), model in zip(schemas.items(), ["base", "ft-a"])]
    requests += [line("tool", "ft-a", tools=[WEATHER], tool_choice="required", parallel_tool_calls=False),
                 line("free", "base", max_tokens=4),
                 line("beams", "base", num_beams=2, temperature=0, response_format={"type": "json_object"})]
    lines = []
    counts = run_batch(tiny_engine, requests, targets.__getitem__, set(), lines.append, batch_size=8)
    by_id = {x["custom_id"]: x for x in lines}
    assert (counts.completed, counts.failed) == (4, 1)
    for name, schema in schemas.items():
        content = by_id[name]["response"]["body"]["choices"][0]["message"]["content"]
        assert jsonschema_rs.validator_for(schema).is_valid(json.loads(content))
    choice = by_id["tool"]["response"]["body"]["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    args = json.loads(choice["message"]["tool_calls"][0]["function"]["arguments"])
    assert jsonschema_rs.validator_for(WEATHER["function"]["parameters"]).is_valid(args)
    assert by_id["beams"]["response"]["body"]["error"]["param"] == "response_format"
