"""``/v1/chat/completions`` and ``/v1/completions``: bodies are checked (400 naming ``param``) before any
proxying; good ones reach the inference server untouched, and its answers come back as they were."""
from __future__ import annotations

import json

import httpx
import pytest

from contracts.base_models import BUILTIN_MODELS

BASE = next(iter(BUILTIN_MODELS))
MESSAGES = [{"role": "user", "content": "hi"}]


async def chunks(content: bytes):
    for i in range(0, len(content), 7):
        yield content[i:i + 7]


@pytest.fixture
def inference(monkeypatch, settings):
    """A stand-in inference server behind the proxy's httpx client; records what reached it."""
    from api.routes import chat

    seen: list[dict] = []
    answer: dict = {"status": 200, "json": None, "content": None, "headers": {}}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append({"path": request.url.path, "body": json.loads(request.content)})
        if answer["content"] is not None:  # streamed, as a real server's body is
            return httpx.Response(answer["status"], content=chunks(answer["content"]), headers=answer["headers"])
        return httpx.Response(answer["status"], json=answer["json"] or {"object": "chat.completion"})

    monkeypatch.setattr(chat, "inference_client", lambda s: httpx.AsyncClient(
        base_url=s.inference_url, transport=httpx.MockTransport(handler)))
    settings.inference_url = "http://inference.test"
    return seen, answer


@pytest.mark.parametrize("path,body,param", [
    ("/v1/chat/completions", {"model": BASE, "messages": MESSAGES, "max_tokens": -5}, "max_tokens"),
    ("/v1/chat/completions", {"model": BASE, "messages": []}, "messages"),
    ("/v1/chat/completions", {"model": BASE, "messages": [{"content": "no role"}]}, "messages.0.role"),
    ("/v1/chat/completions", {"messages": MESSAGES}, "model"),
    ("/v1/chat/completions", {"model": BASE, "messages": MESSAGES, "temperature": 5}, "temperature"),
    ("/v1/chat/completions", {"model": BASE, "messages": MESSAGES, "stop": ["ok", ""]}, "stop"),
    ("/v1/chat/completions", {"model": BASE, "messages": MESSAGES, "n": 99}, "n"),
    ("/v1/chat/completions", {"model": BASE, "messages": MESSAGES, "logprobs": "yes"}, "logprobs"),
    ("/v1/chat/completions", {"model": BASE, "messages": MESSAGES, "top_logprobs": 21, "logprobs": True},
     "top_logprobs"),
    ("/v1/chat/completions", {"model": BASE, "messages": MESSAGES, "presence_penalty": 1}, "presence_penalty"),
    ("/v1/completions", {"model": BASE, "prompt": [1, "a"]}, "prompt"),
    ("/v1/completions", {"model": BASE, "prompt": [[1, 2], []]}, "prompt"),
    ("/v1/completions", {"model": BASE, "prompt": "x", "logprobs": 6}, "logprobs"),
    ("/v1/completions", {"model": BASE, "prompt": "x", "max_tokens": 0}, "max_tokens"),
    ("/v1/completions", {"model": BASE}, "prompt"),
    ("/v1/completions", {"model": BASE, "prompt": []}, "prompt"),
    ("/v1/completions", {"model": BASE, "prompt": "x", "max_completion_tokens": 0}, "max_completion_tokens"),
])
def test_bad_bodies_are_400s_naming_the_param_even_with_no_inference_server(client, alice, path, body, param):
    r = client.post(path, headers=alice.headers, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param and r.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b"[" * 50_000, b"\xff"])
def test_a_body_that_is_not_a_json_object_is_a_400(client, alice, content):
    r = client.post("/v1/chat/completions", headers={**alice.headers, "Content-Type": "application/json"},
                    content=content)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"


def test_an_unknown_model_is_a_404_and_a_good_body_without_server_a_503(client, alice):
    r = client.post("/v1/chat/completions", headers=alice.headers, json={"model": "nope", "messages": MESSAGES})
    assert r.status_code == 404 and r.json()["error"]["param"] == "model"
    r = client.post("/v1/chat/completions", headers=alice.headers, json={"model": BASE, "messages": MESSAGES})
    assert r.status_code == 503 and r.json()["error"]["code"] == "no_inference_server"
    assert client.post("/v1/completions", json={"model": BASE, "prompt": "x"}).status_code == 401


def test_the_body_reaches_the_server_untouched_extra_fields_included(client, alice, inference):
    seen, answer = inference
    body = {"model": BASE, "messages": MESSAGES, "max_tokens": 4, "user": {"any": "shape"}, "metadata": {"k": 1},
            "presence_penalty": 0, "top_k": 0, "stream_options": None}
    answer["json"] = {"id": "chatcmpl-1", "object": "chat.completion", "choices": []}
    r = client.post("/v1/chat/completions", headers=alice.headers, json=body)
    assert r.status_code == 200 and r.json() == answer["json"]
    assert seen == [{"path": "/v1/chat/completions", "body": body}]
    r = client.post("/v1/completions", headers=alice.headers, json={"model": BASE, "prompt": ["a", "b"]})
    assert r.status_code == 200 and seen[-1]["path"] == "/v1/completions"

    scoring = {"model": BASE, "prompt": [[12, 34], [56]], "max_tokens": 0, "echo": True, "logprobs": 5}
    r = client.post("/v1/completions", headers=alice.headers, json=scoring)
    assert r.status_code == 200 and seen[-1]["body"] == scoring
    chat_lp = {"model": BASE, "messages": MESSAGES, "logprobs": True, "top_logprobs": 20}
    assert client.post("/v1/chat/completions", headers=alice.headers, json=chat_lp).status_code == 200


def test_streams_and_server_errors_come_back_as_sent(client, alice, inference):
    _, answer = inference
    answer.update(content=b'data: {"x": 1}\n\ndata: [DONE]\n\n', headers={"content-type": "text/event-stream"})
    r = client.post("/v1/chat/completions", headers=alice.headers,
                    json={"model": BASE, "messages": MESSAGES, "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert r.text.endswith("data: [DONE]\n\n")
    answer.update(status=400, content=None, json={"error": {"message": "too long", "type": "invalid_request_error",
                                                             "param": "prompt", "code": "context_length_exceeded"}})
    r = client.post("/v1/completions", headers=alice.headers, json={"model": BASE, "prompt": "x" * 100})
    assert r.status_code == 400 and r.json()["error"]["param"] == "prompt"
    answer.update(status=200, content=b"<html>oops", headers={})
    r = client.post("/v1/completions", headers=alice.headers, json={"model": BASE, "prompt": "x"})
    assert r.status_code == 502 and r.json()["error"]["code"] == "bad_gateway"


def test_the_openai_sdk_flow_through_the_proxy(client, alice, inference):
    """What the official SDK sends is accepted; what the API refuses is the SDK's usual BadRequestError."""
    import openai

    seen, answer = inference
    answer["json"] = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": BASE,
                      "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"},
                                   "finish_reason": "stop", "logprobs": None}],
                      "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    sdk = openai.OpenAI(base_url="http://testserver/v1", api_key=alice.key, http_client=client, max_retries=0)
    out = sdk.chat.completions.create(model=BASE, messages=MESSAGES, max_tokens=8, temperature=0, seed=1, stop=["\n"],
                                      user="someone", metadata={"k": "v"})
    assert out.choices[0].message.content == "hello" and seen[-1]["body"]["user"] == "someone"
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(model=BASE, messages=MESSAGES, max_tokens=-5)
    assert info.value.body["param"] == "max_tokens" and len(seen) == 1


def serving_usage(app, user) -> list[tuple]:
    from sqlalchemy import select

    from models.job import UsageRecord

    with app.state.session_factory() as s:
        rows = s.execute(select(UsageRecord).where(UsageRecord.owner_id == user.id)).scalars().all()
        return sorted((r.kind, r.job_id, r.tokens_generated) for r in rows)


def test_serving_records_the_completion_tokens_of_answers_and_of_streams_that_carry_usage(
        client, app, alice, inference):
    _, answer = inference
    answer["json"] = {"object": "chat.completion", "choices": [],
                      "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}}
    for _ in range(2):
        assert client.post("/v1/chat/completions", headers=alice.headers,
                           json={"model": BASE, "messages": MESSAGES}).status_code == 200
    assert serving_usage(app, alice) == [("chat", None, 10)]  # one row per hour, no job
    usage_chunk = b'data: {"object": "text_completion", "choices": [], "usage": {"completion_tokens": 7}}\n\n'
    answer.update(content=b'data: {"choices": []}\n\n' + usage_chunk + b"data: [DONE]\n\n",
                  headers={"content-type": "text/event-stream"})
    r = client.post("/v1/completions", headers=alice.headers, json={"model": BASE, "prompt": "x", "stream": True,
                                                                     "stream_options": {"include_usage": True}})
    assert r.status_code == 200 and r.content.endswith(usage_chunk + b"data: [DONE]\n\n")  # relayed untouched
    assert serving_usage(app, alice) == [("chat", None, 10), ("completions", None, 7)]


def test_a_failed_usage_write_never_fails_the_request(client, app, alice, inference, monkeypatch, caplog):
    from api.routes import chat

    def broken(**_):
        raise RuntimeError("ledger down")

    monkeypatch.setattr(chat, "add_usage", broken)
    _, answer = inference
    answer["json"] = {"object": "chat.completion", "choices": [], "usage": {"completion_tokens": 5}}
    r = client.post("/v1/chat/completions", headers=alice.headers, json={"model": BASE, "messages": MESSAGES})
    assert r.status_code == 200 and r.json() == answer["json"]
    assert "could not record chat usage" in caplog.text and serving_usage(app, alice) == []
