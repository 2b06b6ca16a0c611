"""The serving app through the official openai SDK: chat, completions, streaming, mixed adapters."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from contracts.decoding import DecodeRequest
from worker.ml.decoding.engine import InferenceEngine

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name three colours."}]


@pytest.fixture(scope="module")
def engine(tiny_llama_dir):
    return InferenceEngine(tiny_llama_dir, device="cpu", dtype="float32")


def alone(engine, target, **kw) -> str:
    return engine.generate([DecodeRequest(adapter_dir=target.adapter_dir, **kw)])[0].text


def test_chat_completion_with_usage(client, engine, serving_targets):
    resp = client.chat.completions.create(model="ft-a", messages=MESSAGES, max_tokens=8, temperature=0)
    assert resp.object == "chat.completion" and resp.model == "ft-a"
    choice = resp.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason == "length"
    assert choice.message.content == alone(engine, serving_targets["ft-a"], messages=MESSAGES, max_new_tokens=8)
    assert resp.usage.completion_tokens == 8 and resp.usage.prompt_tokens > 10
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + 8


def test_completions_endpoint(client, engine, serving_targets):
    resp = client.completions.create(model="tiny-base", prompt="Once upon a time", max_tokens=6, temperature=0,
                                     n=2)
    assert resp.object == "text_completion" and len(resp.choices) == 2
    want = alone(engine, serving_targets["tiny-base"], prompt="Once upon a time", max_new_tokens=6)
    assert [c.text for c in resp.choices] == [want, want]
    assert resp.usage.prompt_tokens == len(engine.tokenizer("Once upon a time").input_ids)


def test_streaming_chat(client, engine, serving_targets):
    stream = client.chat.completions.create(model="ft-b", messages=MESSAGES, max_tokens=10, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == alone(engine, serving_targets["ft-b"], messages=MESSAGES, max_new_tokens=10)
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1  # really incremental
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens == 10


def test_streaming_completion(client, engine, serving_targets):
    stream = client.completions.create(model="ft-a", prompt="The sky is", max_tokens=6, temperature=0, stream=True)
    text = "".join(c.choices[0].text for c in stream)
    assert text == alone(engine, serving_targets["ft-a"], prompt="The sky is", max_new_tokens=6)


def test_concurrent_users_with_mixed_adapters_share_batches(client, engine, serving_targets, server):
    app = server[1]
    before = len(app.state.batcher.batch_job_counts)
    jobs = [(model, f"Question {i}: what is {i} + {i}?") for i, model in enumerate(["tiny-base", "ft-a", "ft-b"] * 3)]

    def ask(job):
        model, text = job
        r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}], max_tokens=6,
                                           temperature=0)
        return r.choices[0].message.content

    with ThreadPoolExecutor(len(jobs)) as pool:
        got = list(pool.map(ask, jobs))
    for (model, text), out in zip(jobs, got):
        assert out == alone(engine, serving_targets[model], messages=[{"role": "user", "content": text}],
                            max_new_tokens=6)
    counts = app.state.batcher.batch_job_counts[before:]
    assert sum(counts) == len(jobs) and max(counts) > 1  # several users' requests ran in one batch


def test_errors_are_openai_errors(client):
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="missing", messages=MESSAGES)
    assert info.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="ft-a", messages=MESSAGES, temperature=9)
    assert info.value.body["param"] == "temperature"


def test_models_list(client):
    assert {m.id for m in client.models.list()} == {"tiny-base", "ft-a", "ft-b"}


def test_module_entry_point_serves(tiny_llama_dir, tiny_adapters, tmp_path):
    import subprocess
    import sys
    import time

    from openai import OpenAI

    from tests.worker.serving.conftest import free_port

    port = free_port()
    cmd = [sys.executable, "-m", "worker.serving", "--base-model", str(tiny_llama_dir), "--model-name", "base",
           "--adapter", f"ft-a={tiny_adapters['A']}", "--port", str(port), "--dtype", "float32"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=30)
        deadline = time.time() + 120
        while True:
            try:
                assert {m.id for m in client.models.list()} == {"base", "ft-a"}
                break
            except openai.APIConnectionError:
                assert proc.poll() is None and time.time() < deadline, "server did not come up"
                time.sleep(0.3)
        resp = client.chat.completions.create(model="ft-a", messages=MESSAGES, max_tokens=4, temperature=0)
        assert resp.usage.completion_tokens == 4
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_disconnected_stream_stops_its_row(server):
    import time

    import httpx

    base_url, app = server
    engine = app.state.batcher.engine
    alone = engine.generate([DecodeRequest(prompt="Count:", max_new_tokens=600)])[0]
    assert alone.completion_tokens == 600  # left alone, the row would run to the end
    finished = []
    original = engine.generate

    def recording(*args, **kwargs):
        results = original(*args, **kwargs)
        finished.extend(results)
        return results

    engine.generate = recording
    try:
        body = {"model": "tiny-base", "prompt": "Count:", "max_tokens": 600, "temperature": 0, "stream": True}
        with httpx.stream("POST", f"{base_url}/completions", json=body, timeout=30) as resp:
            lines = resp.iter_lines()
            assert next(lines).startswith("data: ")
        deadline = time.time() + 30
        while not finished and time.time() < deadline:
            time.sleep(0.05)
    finally:
        engine.generate = original
    assert finished and finished[0].completion_tokens < 600 and finished[0].finish_reason == "stop"
