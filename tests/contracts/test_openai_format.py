"""OpenAI bodies -> engine requests, and results -> OpenAI objects."""
from __future__ import annotations

from pathlib import Path

import pytest

from contracts.decoding import DecodeResult, ModelTarget
from contracts.openai_format import (
    CHAT_URL,
    COMPLETIONS_URL,
    RequestError,
    check_results,
    completion_body,
    parse_openai_body,
    stream_chunk,
)

BASE = ModelTarget("base")
ADAPTER = ModelTarget("ft", Path("/adapters/ft"), "alpaca")


def test_chat_body_maps_knobs_and_target():
    body = {"model": "ft", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 7, "temperature": 0,
            "stop": "###", "seed": 3, "top_k": 5}
    (req,) = parse_openai_body(CHAT_URL, body, ADAPTER)
    assert req.messages == body["messages"] and req.adapter_dir == Path("/adapters/ft")
    assert (req.max_new_tokens, req.temperature, req.stop, req.seed, req.top_k) == (7, 0, ["###"], 3, 5)
    assert req.prompt_template == "alpaca" and not req.do_sample


def test_openai_defaults_and_n_copies():
    reqs = parse_openai_body(COMPLETIONS_URL, {"model": "base", "prompt": ["a", "b"], "n": 2, "seed": 10}, BASE,
                             default_max_tokens=16)
    assert [r.prompt for r in reqs] == ["a", "a", "b", "b"]
    assert [r.seed for r in reqs] == [10, 11, 10, 11]
    assert all(r.temperature == 1.0 and r.do_sample and r.max_new_tokens == 16 for r in reqs)


@pytest.mark.parametrize("url,body,param", [
    (CHAT_URL, {"model": "m", "messages": "hi"}, "messages"),
    (COMPLETIONS_URL, {"model": "m"}, "prompt"),
    (CHAT_URL, {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 5}, "temperature"),
    (CHAT_URL, {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
    (CHAT_URL, {"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 99}, "n"),
    (CHAT_URL, {"model": "m", "messages": [{"role": "user", "content": "x"}], "logprobs": "yes"}, "logprobs"),
    (CHAT_URL, {"model": "m", "messages": [{"role": "user", "content": "x"}], "presence_penalty": 1}, "presence_penalty"),
    (CHAT_URL, {"model": "m", "messages": [{"role": "user", "content": "x"}], "num_beams": 2,
                "temperature": 0.5}, None),
])
def test_bad_bodies_raise_openai_errors(url, body, param):
    with pytest.raises(RequestError) as info:
        parse_openai_body(url, body, BASE)
    assert info.value.status == 400
    if param:
        assert info.value.param == param
    assert set(info.value.as_body()["error"]) == {"message", "type", "param", "code"}


def test_response_objects_have_openai_shapes():
    results = [DecodeResult("Hi!", "stop", 5, 2), DecodeResult("Hey", "length", 5, 4)]
    chat = completion_body(CHAT_URL, "ft", results, n=2)
    assert chat["object"] == "chat.completion" and chat["choices"][1]["message"]["content"] == "Hey"
    assert chat["usage"] == {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11}
    text = completion_body(COMPLETIONS_URL, "ft", results[:1])
    assert text["object"] == "text_completion" and text["choices"][0]["text"] == "Hi!"
    chunk = stream_chunk(CHAT_URL, "id", 0, "ft", 0, "x", role=True)
    assert chunk["choices"][0]["delta"] == {"role": "assistant", "content": "x"}
    with pytest.raises(RequestError) as info:
        check_results([DecodeResult("", "error", 0, 0, error="context_length_exceeded: 9 > 8")])
    assert info.value.code == "context_length_exceeded"


@pytest.mark.parametrize("url,param", [(CHAT_URL, "messages"), (COMPLETIONS_URL, "prompt")])
def test_a_too_long_input_names_the_field_of_its_endpoint(url, param):
    with pytest.raises(RequestError) as info:
        check_results([DecodeResult("", "error", 0, 0, error="context_length_exceeded: 9 > 8")], url)
    assert (info.value.status, info.value.param) == (400, param)
