"""LocalTeacher: a lorafleet model answering teacher requests in-process (tiny random LLaMA, fp32, CPU)."""
from __future__ import annotations

import pytest

from contracts.decoding import DecodeRequest, ModelTarget
from tests.worker.ml.decoding import engine_helpers as helpers
from worker.ml.teachers.continuation import CHAT_CONTINUE_INSTRUCTION
from worker.ml.teachers.costs import ModelPrice
from worker.ml.teachers.interface import DecodingParams, TeacherRequest
from worker.ml.teachers.local import LocalTeacher

tiny_adapters, tiny_engine = helpers.tiny_adapters, helpers.tiny_engine  # shared fixtures

PROMPTS = ["Come up with a series of tasks:\nTask 1: Name a colour.\nTask 2:", "1. Write a poem.\n2.", "Hello"]


def requests(params: DecodingParams) -> list[TeacherRequest]:
    return [TeacherRequest(f"{i:02x}" * 16, p, params) for i, p in enumerate(PROMPTS)]


def test_completions_answers_equal_the_engine_alone_and_reach_the_ledger_per_row(tiny_engine, tiny_adapters):
    target = ModelTarget("ft:tiny:a:job", tiny_adapters["A"], None)
    teacher = LocalTeacher(tiny_engine, target, api="completions", price=ModelPrice(1.0, 2.0))
    reqs = requests(DecodingParams(max_tokens=7))
    seen = []
    answers = teacher.complete(reqs, on_response=seen.append)
    assert [a.request_id for a in answers] == [r.request_id for r in reqs]
    assert sorted(a.request_id for a in seen) == sorted(r.request_id for r in reqs)  # each one reported once
    for req, ans in zip(reqs, answers):
        alone = tiny_engine.generate([DecodeRequest(prompt=req.prompt, adapter_dir=target.adapter_dir,
                                                        max_new_tokens=7)])[0]
        assert ans.text == alone.text and ans.finish_reason == "length" and ans.model == target.name
        assert (ans.prompt_tokens, ans.completion_tokens) == (alone.prompt_tokens, 7)
        assert ans.cost_usd == pytest.approx((ans.prompt_tokens * 1.0 + 7 * 2.0) / 1e6)
    assert teacher.usage.requests == 3 and teacher.usage.completion_tokens == 21


def test_chat_api_adapts_the_prompt_like_the_remote_teacher(tiny_engine):
    teacher = LocalTeacher(tiny_engine, ModelTarget("tiny", None, None), api="chat")
    req = TeacherRequest("ab" * 16, PROMPTS[0], DecodingParams(max_tokens=5))
    (ans,) = teacher.complete([req])
    messages = [{"role": "user", "content": f"{CHAT_CONTINUE_INSTRUCTION}\n\n{PROMPTS[0]}"}]
    direct = tiny_engine.generate([DecodeRequest(messages=messages, max_new_tokens=5)])[0]
    assert ans.prompt_tokens == direct.prompt_tokens and ans.completion_tokens == direct.completion_tokens
    stripped = direct.text.lstrip()
    assert ans.text.strip() in stripped  # an echo of "Task 2:" would be removed; nothing else is
    assert ans.text == "" or ans.text.startswith(" ")


def test_sampling_is_seeded_by_the_request_id(tiny_engine):
    teacher = LocalTeacher(tiny_engine, ModelTarget("tiny", None, None), api="completions")
    params = DecodingParams(max_tokens=12, temperature=1.0, top_p=1.0)
    one = TeacherRequest("11" * 16, "Hello", params)
    again = teacher.complete([one, TeacherRequest("22" * 16, "Hello", params)])
    twice = teacher.complete([one])
    assert again[0].text == twice[0].text  # same request, same answer, whatever else is in the batch
    assert again[0].text != again[1].text  # another request samples differently


def test_stops_cut_the_answer_and_top_p_zero_is_greedy(tiny_engine):
    teacher = LocalTeacher(tiny_engine, ModelTarget("tiny", None, None), api="completions")
    full = teacher.complete([TeacherRequest("33" * 16, "Hello", DecodingParams(max_tokens=10))])[0].text
    stop = full[3:6]
    assert stop.strip(), full
    cut = teacher.complete([TeacherRequest("44" * 16, "Hello", DecodingParams(max_tokens=10, stop=(stop,)))])[0]
    assert cut.finish_reason == "stop" and cut.text == full[:full.index(stop)]
    zero_p = teacher.complete([TeacherRequest("55" * 16, "Hello", DecodingParams(max_tokens=10, temperature=1.0,
                                                                                 top_p=0.0))])[0]
    assert zero_p.text == full


def test_context_overflow_shrinks_max_tokens_or_answers_with_an_error(tiny_engine):
    teacher = LocalTeacher(tiny_engine, ModelTarget("tiny", None, None), api="completions")
    room = tiny_engine.max_positions
    near_full = "word " * (room - 20)
    n_prompt = len(tiny_engine.tokenizer(near_full).input_ids)
    too_long = "word " * (room + 10)
    shrunk, failed, fine = teacher.complete([
        TeacherRequest("66" * 16, near_full, DecodingParams(max_tokens=500)),
        TeacherRequest("77" * 16, too_long, DecodingParams(max_tokens=5)),
        TeacherRequest("88" * 16, "Hello", DecodingParams(max_tokens=4)),
    ])
    assert shrunk.finish_reason in ("length", "stop") and shrunk.completion_tokens <= room - n_prompt
    assert failed.finish_reason == "error" and "context_length_exceeded" in failed.error
    assert fine.completion_tokens == 4 and fine.error is None


def test_a_missing_adapter_answers_with_an_error(tiny_engine, tmp_path):
    teacher = LocalTeacher(tiny_engine, ModelTarget("gone", tmp_path / "nope", None), api="completions")
    (ans,) = teacher.complete([TeacherRequest("99" * 16, "Hello", DecodingParams(max_tokens=3))])
    assert ans.finish_reason == "error" and ans.error and ans.text == ""
