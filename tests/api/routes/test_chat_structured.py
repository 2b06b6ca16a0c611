"""``response_format`` / ``tools`` at the API edge: refused with their ``param`` before any proxying."""
from __future__ import annotations

import pytest

from contracts.base_models import BUILTIN_MODELS

BASE = next(iter(BUILTIN_MODELS))
MESSAGES = [{"role": "user", "content": "hi"}]
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}


@pytest.mark.parametrize("path,extra,param", [
    ("/v1/chat/completions", {"response_format": {"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": "object", "properties": {"a": {"type": "string", "pattern": "("}}}}}},
     "response_format.json_schema.schema"),
    ("/v1/chat/completions", {"response_format": {"type": "json_object"}, "num_beams": 3, "temperature": 0},
     "response_format"),
    ("/v1/chat/completions", {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "g"}}},
     "tool_choice"),
    ("/v1/chat/completions", {"tool_choice": "required"}, "tool_choice"),
    ("/v1/chat/completions", {"tools": "f"}, "tools"),
    ("/v1/completions", {"tools": [TOOL]}, "tools"),
])
def test_bad_structured_bodies_are_400s_naming_the_param(client, alice, path, extra, param):
    body = {"model": BASE, "max_tokens": 4, **extra, **({"messages": MESSAGES} if "chat" in path else {"prompt": "x"})}
    r = client.post(path, headers=alice.headers, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


def test_a_good_structured_body_passes_the_edge(client, alice):
    body = {"model": BASE, "messages": MESSAGES, "tools": [TOOL], "tool_choice": "required",
            "response_format": {"type": "json_object"}}
    r = client.post("/v1/chat/completions", headers=alice.headers, json=body)
    assert r.status_code == 503  # accepted; no inference server is configured here
