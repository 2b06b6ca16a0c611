"""OpenAITeacher against a real local HTTP server through the real ``openai`` SDK."""
from __future__ import annotations

import time

import pytest

from tests.worker.ml.selfinstruct.openai_stub import StubDelay, StubError, start_stub_server
from worker.ml.teachers.continuation import (
    CHAT_CONTINUE_INSTRUCTION,
    apply_stops,
    request_seed,
    strip_echoed_tail,
)
from worker.ml.teachers.costs import ModelPrice
from worker.ml.teachers.interface import (
    DecodingParams,
    TeacherConfigError,
    TeacherRequest,
    TeacherUnavailableError,
)
from worker.ml.teachers.remote import OpenAITeacher

KEY = "sk-test-SECRET-123456"
PARAMS = DecodingParams(max_tokens=64, temperature=0.7, top_p=0.5, stop=("\n\n", "\n16", "16.", "16 ."),
                        presence_penalty=2.0)


@pytest.fixture()
def stub():
    server, stop = start_stub_server()
    yield server
    stop()


def make_teacher(stub, api="completions", **kw):
    sleeps: list[float] = []
    kw.setdefault("backoff_initial_s", 0.01)
    kw.setdefault("backoff_max_s", 0.05)
    teacher = OpenAITeacher(base_url=stub.base_url, model="stub-model", api_key=KEY, api=api,
                            prices={"stub-model": ModelPrice(1.0, 2.0)}, timeout_s=5,
                            sleep=lambda s: (sleeps.append(s), time.sleep(s)), **kw)
    return teacher, sleeps


def req(i: int, prompt: str | None = None, params: DecodingParams = PARAMS) -> TeacherRequest:
    return TeacherRequest(f"r{i}", prompt if prompt is not None else f"prompt number {i}\n9.", params)


def test_completions_text_usage_cost_and_params(stub):
    stub.script = lambda api, p, hit: (" Write a haiku about tea.\n10. Name a colour\n\n11. ignored", "stop")
    teacher, _ = make_teacher(stub)
    seen = []
    [resp] = teacher.complete([req(0)], on_response=seen.append)
    assert resp.text == " Write a haiku about tea.\n10. Name a colour"  # client-side stop at "\n\n"
    assert resp.finish_reason == "stop" and resp.attempts == 1
    assert (resp.prompt_tokens, resp.completion_tokens) == (4, 11)
    assert resp.cost_usd == pytest.approx((4 * 1.0 + 11 * 2.0) / 1e6)
    assert seen == [resp]
    body = stub.bodies[0]
    assert body["prompt"] == "prompt number 0\n9." and body["model"] == "stub-model"
    assert body["top_p"] == 0.5 and body["presence_penalty"] == 2.0 and body["stop"] == list(PARAMS.stop)
    assert body["seed"] == request_seed(req(0).request_id)  # sampled: reproducible where the server honours it
    assert stub.auth_headers[0] == f"Bearer {KEY}"
    assert teacher.usage.requests == 1 and teacher.usage.cost_usd == pytest.approx(resp.cost_usd)


def test_chat_adaptation_single_user_message_and_echo_stripped(stub):
    stub.script = lambda api, p, hit: "9. Describe a rainbow.\n10. List three fruits."
    teacher, _ = make_teacher(stub, api="chat")
    greedy = DecodingParams(max_tokens=8, temperature=0.0, top_p=0.0, stop=("Task:",))
    [resp] = teacher.complete([req(0, params=greedy)])
    assert resp.text == " Describe a rainbow.\n10. List three fruits."
    [msg] = stub.bodies[0]["messages"]
    assert msg["role"] == "user" and msg["content"] == f"{CHAT_CONTINUE_INSTRUCTION}\n\nprompt number 0\n9."
    assert "top_p" not in stub.bodies[0] and "presence_penalty" not in stub.bodies[0] and "seed" not in stub.bodies[0]


def test_retries_429_and_5xx_with_exponential_backoff(stub):
    def script(api, p, hit):
        if "rate" in p:
            return StubError(429) if hit <= 2 else "fine"
        return StubError(503) if hit == 1 else "fine"

    stub.script = script
    teacher, sleeps = make_teacher(stub, backoff_initial_s=0.01, backoff_max_s=1.0)
    a, b = teacher.complete([req(0, "rate limited"), req(1, "server hiccup")])
    assert (a.text, a.attempts, b.text, b.attempts) == ("fine", 3, "fine", 2)
    assert stub.hits["rate limited"] == 3 and stub.hits["server hiccup"] == 2
    assert len(sleeps) == 3 and max(sleeps) >= 0.02  # 0.01, 0.02 for the 429s, 0.01 for the 503
    assert teacher.usage.retries == 3


def test_retry_after_header_is_honoured(stub):
    stub.script = lambda api, p, hit: StubError(429, retry_after=0.2) if hit == 1 else "ok"
    teacher, sleeps = make_teacher(stub, backoff_initial_s=0.01, backoff_max_s=5)
    assert teacher.complete([req(0)])[0].text == "ok"
    assert 0.2 <= sleeps[0] < 0.3


def test_timeout_is_retried(stub):
    stub.script = lambda api, p, hit: StubDelay(2.0) if hit == 1 else "after timeout"
    teacher, sleeps = make_teacher(stub)
    teacher._client = teacher._client.with_options(timeout=0.5)
    [resp] = teacher.complete([req(0)])
    assert resp.text == "after timeout" and resp.attempts == 2 and len(sleeps) == 1


def test_400_is_not_retried_and_answers_with_error(stub):
    stub.script = lambda api, p, hit: StubError(400) if "bad" in p else "good"
    teacher, sleeps = make_teacher(stub)
    bad, good = teacher.complete([req(0, "bad prompt"), req(1, "fine prompt")])
    assert bad.finish_reason == "error" and "400" in bad.error and bad.cost_usd == 0
    assert stub.hits["bad prompt"] == 1 and sleeps == []
    assert good.text == "good"


def test_prompt_too_long_shrinks_max_tokens_like_the_published_code(stub):
    too_long = StubError(400, message="This model's maximum context length is 2048 tokens. Please reduce your prompt")
    stub.script = lambda api, p, hit: too_long if hit <= 2 else "fits now"
    teacher, sleeps = make_teacher(stub)
    [resp] = teacher.complete([req(0)])
    assert resp.text == "fits now" and resp.attempts == 3 and sleeps == []
    assert [b["max_tokens"] for b in stub.bodies] == [64, 51, 40]


def test_refused_optional_knob_is_dropped_once_and_for_all(stub):
    refused = StubError(400, message="'presence_penalty' is not supported by this server", param="presence_penalty",
                        code="unsupported_parameter")
    stub.script = lambda api, p, hit: StubDelay(0.2, refused) if hit == 1 and "number 2" not in p else "fine"
    teacher, sleeps = make_teacher(stub, max_concurrency=2)
    first = teacher.complete([req(0), req(1)])  # both in flight when the first refusal comes back
    [later] = teacher.complete([req(2)])
    assert [(r.text, r.attempts) for r in first] == [("fine", 2), ("fine", 2)] and later.attempts == 1
    assert teacher.dropped_params == {"presence_penalty"} and sleeps == []
    sent_with = sorted("presence_penalty" in b for b in stub.bodies)
    assert sent_with == [False, False, False, True, True]
    assert stub.bodies[-1]["top_p"] == 0.5  # other knobs still sent


def test_auth_error_raises_config_error_without_the_key(stub):
    stub.script = lambda api, p, hit: StubError(401)
    teacher, _ = make_teacher(stub)
    with pytest.raises(TeacherConfigError) as info:
        teacher.complete([req(0)])
    assert KEY not in str(info.value) and stub.hits["prompt number 0\n9."] == 1


def test_exhausted_retries_raise_but_deliver_other_answers(stub):
    stub.script = lambda api, p, hit: StubError(500) if "down" in p else "answered"
    teacher, _ = make_teacher(stub, max_retries=2)
    seen = []
    with pytest.raises(TeacherUnavailableError):
        teacher.complete([req(0, "down"), req(1, "up")], on_response=seen.append)
    assert stub.hits["down"] == 3
    assert [r.text for r in seen] == ["answered"]  # the paid answer still reached the ledger


def test_concurrency_limit(stub):
    stub.script = lambda api, p, hit: StubDelay(0.15, "slow")
    teacher, _ = make_teacher(stub, max_concurrency=2)
    out = teacher.complete([req(i) for i in range(6)])
    assert [r.request_id for r in out] == [f"r{i}" for i in range(6)]
    assert stub.max_in_flight == 2


def test_key_never_in_repr_or_attributes(stub):
    teacher, _ = make_teacher(stub)
    assert KEY not in repr(teacher)
    assert all(KEY not in repr(v) for k, v in vars(teacher).items() if k not in ("_client", "_secret"))


def test_helpers():
    assert apply_stops("a\n\nb Task: c", ["Task:", "\n\n"]) == ("a", True)
    assert apply_stops("abc", ["x"]) == ("abc", False)
    assert strip_echoed_tail("x\n4. Instruction:", "4. Instruction: Do it") == " Do it"
    assert strip_echoed_tail("x\n9.", " Do it") == " Do it"
    assert strip_echoed_tail("x\n9.", "\n\nDo it\n\n10. no") == " Do it\n\n10. no"
    assert strip_echoed_tail("x\n9.", "  ") == ""
    assert strip_echoed_tail("x\n9.", "1. Name a tree.\n2. Name a bird.") == " Name a tree.\n2. Name a bird."
    assert strip_echoed_tail("x\n4. Instruction:", "1. Instruction: Do it") == " Do it"
    assert strip_echoed_tail("x\n9.", "1999 was a good year") == " 1999 was a good year"


def test_request_seed_depends_on_the_request_only():
    assert request_seed(req(0).request_id) == request_seed(req(0).request_id)
    assert request_seed(req(0).request_id) != request_seed(req(1).request_id)
    assert 0 <= request_seed("f" * 64) < 2 ** 60 and isinstance(request_seed("not-hex"), int)
