"""response_format and tools through the serving app and the official openai SDK (tiny random LLaMA:
only the token masks make its answers valid)."""
from __future__ import annotations

import json

import jsonschema_rs
import openai
import pytest

from tests.worker.ml.decoding.test_constraints import CLOCK, FLAGS, PERSON, WEATHER

MESSAGES = [{"role": "user", "content": "Give me JSON."}]


def json_schema(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}


def valid(schema: dict, text: str) -> bool:
    return jsonschema_rs.validator_for(schema).is_valid(json.loads(text))


def test_json_schema_chat_choices_validate(client):
    resp = client.chat.completions.create(model="ft-a", messages=MESSAGES, response_format=json_schema(PERSON),
                                          n=3, temperature=1.0, seed=1, max_tokens=64)
    for choice in resp.choices:
        assert choice.finish_reason == "stop" and valid(PERSON, choice.message.content)


def test_json_schema_completion_and_stream(client):
    resp = client.completions.create(model="tiny-base", prompt="JSON:", max_tokens=64, temperature=1.0, seed=2,
                                     extra_body={"response_format": json_schema(FLAGS)})
    assert valid(FLAGS, resp.choices[0].text)
    stream = client.chat.completions.create(model="tiny-base", messages=MESSAGES, response_format=json_schema(FLAGS),
                                            temperature=1.0, seed=3, max_tokens=64, stream=True)
    chunks = [c for c in stream if c.choices]
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert sum(1 for c in chunks if c.choices[0].delta.content) > 1 and valid(FLAGS, text)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_required_tool_call_in_openai_shape(client):
    resp = client.chat.completions.create(model="tiny-base", messages=MESSAGES, tools=[WEATHER, CLOCK],
                                          tool_choice={"type": "function", "function": {"name": "get_weather"}},
                                          parallel_tool_calls=False, temperature=1.0, seed=4, max_tokens=64)
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather" and call.id.startswith("call_")
    assert valid(WEATHER["function"]["parameters"], call.function.arguments)
    history = [*MESSAGES, choice.message.model_dump(exclude_none=True),
               {"role": "tool", "tool_call_id": call.id, "content": '{"celsius": 21}'}]
    after = client.chat.completions.create(model="tiny-base", messages=history, tools=[WEATHER], tool_choice="none",
                                           temperature=0, max_tokens=4)
    assert after.choices[0].message.tool_calls is None and after.choices[0].message.content


def test_streamed_tool_call(client):
    stream = client.chat.completions.create(model="ft-b", messages=MESSAGES, tools=[WEATHER], tool_choice="required",
                                            parallel_tool_calls=False, temperature=1.0, seed=5, max_tokens=64,
                                            stream=True)
    chunks = [c for c in stream if c.choices]
    assert not any(c.choices[0].delta.content for c in chunks)  # the call's raw text is not content
    (calls,) = [c.choices[0].delta.tool_calls for c in chunks if c.choices[0].delta.tool_calls]
    assert calls[0].index == 0 and calls[0].function.name == "get_weather"
    assert valid(WEATHER["function"]["parameters"], calls[0].function.arguments)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize(("extra", "param"), [
    ({"response_format": json_schema(PERSON), "num_beams": 2, "temperature": 0}, "response_format"),
    ({"response_format": json_schema({"type": "strin"})}, "response_format.json_schema.schema"),
    ({"response_format": {"type": "yaml"}}, "response_format.type"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
    ({"tools": [{"type": "function", "function": {"name": "bad name"}}]}, "tools[0].function.name"),
])
def test_refusals_name_the_field(client, extra, param):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="tiny-base", messages=MESSAGES, max_tokens=4, extra_body=extra)
    assert err.value.body["param"] == param


def test_tools_on_completions_are_refused(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model="tiny-base", prompt="x", max_tokens=4, extra_body={"tools": [WEATHER]})
    assert err.value.body["param"] == "tools"
