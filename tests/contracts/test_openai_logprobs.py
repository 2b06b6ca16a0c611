"""OpenAI log-probability / echo / token-prompt fields: parsing, errors naming their param, response shapes."""
from __future__ import annotations

import pytest

from contracts.decoding import DecodeResult, ModelTarget, TokenLogprobs, TokenPiece
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
MSG = [{"role": "user", "content": "x"}]


def test_completions_logprobs_echo_and_scoring_only():
    (req,) = parse_openai_body(COMPLETIONS_URL, {"model": "m", "prompt": "a b", "logprobs": 3, "echo": True,
                                                 "max_tokens": 0}, BASE)
    assert (req.logprobs, req.echo, req.max_new_tokens) == (3, True, 0)
    (plain,) = parse_openai_body(COMPLETIONS_URL, {"model": "m", "prompt": "a", "logprobs": None}, BASE)
    assert (plain.logprobs, plain.echo) == (None, False)


def test_chat_logprobs_and_top_logprobs():
    (req,) = parse_openai_body(CHAT_URL, {"model": "m", "messages": MSG, "logprobs": True, "top_logprobs": 20}, BASE)
    assert req.logprobs == 20
    (req,) = parse_openai_body(CHAT_URL, {"model": "m", "messages": MSG, "logprobs": True}, BASE)
    assert req.logprobs == 0
    (req,) = parse_openai_body(CHAT_URL, {"model": "m", "messages": MSG, "logprobs": False, "top_logprobs": 0}, BASE)
    assert req.logprobs is None


def test_token_prompts_one_or_many():
    (one,) = parse_openai_body(COMPLETIONS_URL, {"model": "m", "prompt": [5, 6, 7]}, BASE)
    assert one.prompt_ids == [5, 6, 7] and one.prompt is None
    many = parse_openai_body(COMPLETIONS_URL, {"model": "m", "prompt": [[1], [2, 3]], "n": 2}, BASE)
    assert [r.prompt_ids for r in many] == [[1], [1], [2, 3], [2, 3]]


@pytest.mark.parametrize("url,extra,param", [
    (COMPLETIONS_URL, {"prompt": [1, "a"]}, "prompt"),
    (COMPLETIONS_URL, {"prompt": [[1, 2], []]}, "prompt"),
    (COMPLETIONS_URL, {"prompt": [[1, -2]]}, "prompt"),
    (COMPLETIONS_URL, {"prompt": [1, True]}, "prompt"),
    (COMPLETIONS_URL, {"prompt": []}, "prompt"),
    (COMPLETIONS_URL, {"prompt": {"a": 1}}, "prompt"),
    (COMPLETIONS_URL, {"prompt": "a", "logprobs": 6}, "logprobs"),
    (COMPLETIONS_URL, {"prompt": "a", "logprobs": True}, "logprobs"),
    (COMPLETIONS_URL, {"prompt": "a", "echo": "yes"}, "echo"),
    (COMPLETIONS_URL, {"prompt": "a", "max_tokens": 0}, "max_tokens"),
    (COMPLETIONS_URL, {"prompt": "a", "logprobs": 1, "num_beams": 2, "temperature": 0}, "logprobs"),
    (CHAT_URL, {"messages": MSG, "top_logprobs": 2}, "top_logprobs"),
    (CHAT_URL, {"messages": MSG, "logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    (CHAT_URL, {"messages": MSG, "echo": True}, "echo"),
])
def test_bad_fields_are_400s_naming_their_param(url, extra, param):
    with pytest.raises(RequestError) as info:
        parse_openai_body(url, {"model": "m", **extra}, BASE)
    assert (info.value.status, info.value.param) == (400, param)
    assert info.value.code != "missing_required_parameter"


def test_engine_prompt_errors_name_the_input_field():
    bad = [DecodeResult("", "error", 0, 0, error="invalid_prompt: token ids must be below the vocabulary size (9)")]
    with pytest.raises(RequestError) as info:
        check_results(bad, COMPLETIONS_URL)
    assert (info.value.status, info.value.param) == (400, "prompt")
    with pytest.raises(RequestError) as info:
        check_results([DecodeResult("", "error", 9, 0, error="context_length_exceeded: 9 > 8")], COMPLETIONS_URL)
    assert info.value.param == "prompt"


def sample_logprobs() -> TokenLogprobs:
    """Echoed prompt "Hi" (tokens 1, 2) then a generated " there" (3), top-2 alternatives."""
    pieces = {1: TokenPiece("H", [72]), 2: TokenPiece("i", [105]), 3: TokenPiece(" there", list(b" there")),
              4: TokenPiece("bytes:\\xe2", [0xE2])}
    return TokenLogprobs([1, 2, 3], [None, -1.5, -0.25], [[], [(4, -0.5), (2, -1.5)], [(3, -0.25), (4, -2.0)]],
                         [0, 1, 2], pieces)


def test_completion_logprobs_have_openai_legacy_shape():
    body = completion_body(COMPLETIONS_URL, "m", [DecodeResult("Hi there", "length", 2, 1, logprobs=sample_logprobs())])
    lp = body["choices"][0]["logprobs"]
    assert lp == {"tokens": ["H", "i", " there"], "token_logprobs": [None, -1.5, -0.25],
                  "top_logprobs": [None, {"bytes:\\xe2": -0.5, "i": -1.5}, {" there": -0.25, "bytes:\\xe2": -2.0}],
                  "text_offset": [0, 1, 2]}
    chunk = stream_chunk(COMPLETIONS_URL, "id", 0, "m", 0, " there", logprobs=sample_logprobs().since(2))
    assert chunk["choices"][0]["logprobs"] == {"tokens": [" there"], "token_logprobs": [-0.25],
                                               "top_logprobs": [{" there": -0.25, "bytes:\\xe2": -2.0}],
                                               "text_offset": [2]}


def test_chosen_token_is_always_among_the_completion_alternatives():
    lp = TokenLogprobs([3], [-3.0], [[(4, -0.1)]], [0], {3: TokenPiece("a", [97]), 4: TokenPiece("b", [98])})
    body = completion_body(COMPLETIONS_URL, "m", [DecodeResult("a", "length", 1, 1, logprobs=lp)])
    assert body["choices"][0]["logprobs"]["top_logprobs"] == [{"b": -0.1, "a": -3.0}]


def test_chat_logprobs_have_openai_shape():
    lp = sample_logprobs().since(1)  # chat has no echo: every token has a log-probability
    body = completion_body(CHAT_URL, "m", [DecodeResult("i there", "stop", 2, 2, logprobs=lp)])
    content = body["choices"][0]["logprobs"]["content"]
    assert content[0] == {"token": "i", "logprob": -1.5, "bytes": [105],
                          "top_logprobs": [{"token": "bytes:\\xe2", "logprob": -0.5, "bytes": [0xE2]},
                                           {"token": "i", "logprob": -1.5, "bytes": [105]}]}
    assert [c["token"] for c in content] == ["i", " there"]
    assert body["choices"][0]["logprobs"]["refusal"] is None
    chunk = stream_chunk(CHAT_URL, "id", 0, "m", 0, " there", logprobs=sample_logprobs().since(2))
    assert chunk["choices"][0]["logprobs"]["content"][0]["token"] == " there"
    assert completion_body(CHAT_URL, "m", [DecodeResult("x", "stop", 1, 1)])["choices"][0]["logprobs"] is None


def test_batch_lines_take_token_prompts_and_name_a_bad_one():
    import json

    from contracts.batch_records import parse_batch_file

    def line(custom_id, prompt):
        return {"custom_id": custom_id, "method": "POST", "url": "/v1/completions",
                "body": {"model": "m", "prompt": prompt, "logprobs": 1, "echo": True, "max_tokens": 0}}

    data = "".join(json.dumps(x) + "\n" for x in [line("ids", [1, 2]), line("many", [[1], [2, 3]]),
                                                    line("text", ["a", "b"]), line("bad", [[1], "x"])]).encode()
    res = parse_batch_file(data)
    assert [r.custom_id for r in res.records] == ["ids", "many", "text"]
    assert [(e.line, e.param) for e in res.errors] == [(4, "body.prompt")]
