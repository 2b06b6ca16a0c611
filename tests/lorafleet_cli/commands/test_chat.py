"""``lorafleet chat``: one question with ``-m`` gets a streamed answer; the interactive session keeps the
conversation."""
from __future__ import annotations

import io

import pytest

pytestmark = pytest.mark.integration


def test_one_shot_prints_a_streamed_answer(live_api, inference_server, user_key, run):
    flags = ("--base-url", live_api.url, "--api-key", user_key, "--max-tokens", "12", "--temperature", "0")
    result = run("chat", "-m", "What is the capital of France?", *flags, "--json")
    assert result.code == 0, result.err
    assert result.json["streamed"] is True and result.json["content"].strip()
    assert result.json["finish_reason"] in ("stop", "length")
    human = run("chat", "-m", "What is the capital of France?", *flags)
    assert human.code == 0 and human.out.strip() == result.json["content"].strip()  # greedy: the same answer
    unknown = run("chat", "-m", "hi", "--model", "ft:nope", *flags[:4])
    assert unknown.code == 4 and "nope" in unknown.err


def test_the_interactive_session_answers_each_line(live_api, inference_server, user_key, run, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("Say hello.\n/reset\nSay bye.\n/exit\n"))
    result = run("chat", "--base-url", live_api.url, "--api-key", user_key, "--max-tokens", "6", "--temperature", "0")
    assert result.code == 0, result.err
    assert result.out.count("smollm2-135m-instruct> ") == 2 and "/exit" in result.err
