"""Issue 4, batch jobs end to end: the official openai SDK runs OpenAI Batch API jobs on a real Celery
worker with the real base model and two LoRA adapters (CPU, fp32, greedy)."""
from __future__ import annotations

import io
import json

import httpx
import pytest

from tests.integration.adapter_rows import BASE, api, make_adapter_folders, register_adapters, user_id_of
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PROMPTS = ["Name a primary colour.", "What is 2 + 3?", "Give one word that rhymes with cat."]
MAX_TOKENS = 16
FP32 = {"precision": "fp32"}  # exact: batching must not change a greedy answer


@pytest.fixture(scope="module")
def adapter_folders(base_model_dir, tmp_path_factory):
    return make_adapter_folders(base_model_dir, tmp_path_factory.mktemp("batch-adapters"))


@pytest.fixture(scope="module")
def engine_alone(base_model_dir):
    """The engine in the test process, fed one request at a time: what each model produces alone."""
    from worker.ml.decoding.engine import InferenceEngine

    return InferenceEngine(base_model_dir, device="cpu", dtype="float32")


@pytest.fixture
def models(openai_client, adapter_folders, settings) -> list[str]:
    """[base, adapter A, adapter B], the adapters owned by the SDK's user."""
    return [BASE, *register_adapters(settings, user_id_of(openai_client), adapter_folders)]


def chat_line(custom_id: str, model: str, content: str, **body) -> dict:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": model, "messages": [{"role": "user", "content": content}],
                     "temperature": 0, "max_tokens": MAX_TOKENS, **body}}


def upload_batch(client, lines: list[dict]):
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    return client.files.create(file=("batch.jsonl", io.BytesIO(data)), purpose="batch")


def wait_batch(client, batch_id: str, statuses=("completed", "failed", "cancelled"), timeout=600):
    return wait_for(lambda: (b := client.batches.retrieve(batch_id)).status in statuses and b, timeout, 0.5,
                    f"batch {batch_id} to reach {statuses}")


def read_lines(client, file_id: str) -> list[dict]:
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines() if line.strip()]


def alone(engine, model: str, folders: dict, content: str) -> str:
    from contracts.decoding import DecodeRequest

    req = DecodeRequest(messages=[{"role": "user", "content": content}], adapter_dir=folders[model],
                            max_new_tokens=MAX_TOKENS, temperature=0)
    return engine.generate([req])[0].text


def test_sdk_batch_mixes_base_and_two_adapters(openai_client, start_worker, models, adapter_folders,
                                                engine_alone):
    client = openai_client
    lines = [chat_line(f"{m}-{p}", model, prompt) for p, prompt in enumerate(PROMPTS)
             for m, model in enumerate(models)]
    bad = [chat_line("unknown-model", "ft:nobody:nothing:x", "Hi"),
           chat_line("bad-temperature", BASE, "Hi", temperature=-1),
           chat_line("unsupported-knob", models[1], "Hi", presence_penalty=1),
           {"custom_id": "other-endpoint", "method": "POST", "url": "/v1/completions",
            "body": {"model": BASE, "prompt": "Hi", "max_tokens": 4}}]
    f = upload_batch(client, lines[:4] + bad + lines[4:])
    batch = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h",
                                  metadata={"purpose": "test"}, extra_body={**FP32, "batch_size": 4})
    assert batch.object == "batch" and batch.status == "validating" and batch.request_counts.total == 13
    assert batch.metadata == {"purpose": "test"} and batch.expires_at == batch.created_at + 24 * 3600
    start_worker()
    done = wait_batch(client, batch.id)
    assert done.status == "completed", done.errors
    assert done.request_counts.model_dump() == {"total": 13, "completed": 9, "failed": 4}
    assert done.in_progress_at and done.finalizing_at and done.completed_at
    assert done.in_progress_at <= done.finalizing_at <= done.completed_at
    assert done.failed_at is None and done.cancelled_at is None
    assert done.usage.output_tokens > 0 and done.usage.total_tokens == done.usage.input_tokens + done.usage.output_tokens
    assert batch.id in [b.id for b in client.batches.list(limit=10).data]

    out = {line["custom_id"]: line for line in read_lines(client, done.output_file_id)}
    assert sorted(out) == sorted(line["custom_id"] for line in lines)
    folders = {BASE: None, models[1]: adapter_folders[0], models[2]: adapter_folders[1]}
    for line in lines:
        got = out[line["custom_id"]]
        assert got["error"] is None and got["response"]["status_code"] == 200
        body = got["response"]["body"]
        assert body["object"] == "chat.completion" and body["model"] == line["body"]["model"]
        text = body["choices"][0]["message"]["content"]
        assert text == alone(engine_alone, line["body"]["model"], folders, line["body"]["messages"][0]["content"])
    for p in range(len(PROMPTS)):  # each row really went through its own model
        assert len({out[f"{m}-{p}"]["response"]["body"]["choices"][0]["message"]["content"]
                    for m in range(3)}) > 1

    errors = {line["custom_id"]: line for line in read_lines(client, done.error_file_id)}
    assert sorted(errors) == sorted(b["custom_id"] for b in bad)
    assert errors["unknown-model"]["response"]["status_code"] == 404
    assert errors["unknown-model"]["error"]["code"] == "model_not_found"
    assert errors["bad-temperature"]["response"]["body"]["error"]["param"] == "temperature"
    assert errors["unsupported-knob"]["error"]["code"] == "unsupported_parameter"
    assert errors["other-endpoint"]["error"]["code"] == "invalid_url"
    assert client.files.retrieve(done.output_file_id).purpose == "batch_output"


def test_bad_batch_inputs_are_refused_at_the_edge(openai_client, make_user):
    import openai

    client = openai_client
    with pytest.raises(openai.BadRequestError) as err:  # a malformed line refuses the whole upload, by line
        client.files.create(file=("b.jsonl", io.BytesIO(b'{"custom_id": "a"}\nnot json\n')), purpose="batch")
    assert [e["line"] for e in err.value.body["lines"]] == [1, 2]
    train = client.files.create(file=("t.jsonl", io.BytesIO(b'{"instruction": "a", "output": "b"}\n')),
                                purpose="fine-tune")
    with pytest.raises(openai.BadRequestError) as err:
        client.batches.create(input_file_id=train.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert err.value.body["code"] == "invalid_file_purpose"
    with pytest.raises(openai.UnprocessableEntityError):
        client.batches.create(input_file_id=train.id, endpoint="/v1/embeddings", completion_window="24h")
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_doesnotexist")
    f = upload_batch(client, [chat_line("x", BASE, "Hi")])
    mine = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    _, other = make_user()
    assert httpx.get(f"{client.base_url}batches/{mine.id}", headers=other).status_code == 404
    cancelled = client.batches.cancel(mine.id)  # never admitted (no worker): cancelled at once
    assert cancelled.status == "cancelled" and cancelled.cancelled_at and cancelled.cancelling_at


def test_kill_9_resumes_without_redoing_finished_lines(openai_client, start_worker, models, settings):
    client = openai_client
    n = 40
    lines = [chat_line(f"r{i}", models[i % 2], f"Count to {i}.", max_tokens=8) for i in range(n)]
    batch = client.batches.create(input_file_id=upload_batch(client, lines).id, endpoint="/v1/chat/completions",
                                  completion_window="24h", extra_body={**FP32, "batch_size": 2})
    ledger = settings.artifacts_dir / "jobs" / batch.id / "output.jsonl"

    def finished_lines() -> int:  # whole lines the worker has written out (they survive its kill)
        return ledger.read_bytes().count(b"\n") if ledger.exists() else 0

    w = start_worker()
    seen = wait_for(lambda: (c := finished_lines()) >= 4 and c, 600, 0.05, "some finished lines")
    w.kill()
    seen = finished_lines()
    assert seen < n, "the batch finished before the worker could be killed"
    start_worker()
    done = wait_batch(client, batch.id)
    assert done.status == "completed" and done.request_counts.completed == n
    ids = [line["custom_id"] for line in read_lines(client, done.output_file_id)]
    assert len(ids) == n and len(set(ids)) == n  # nothing redone (the ledger is append-only), nothing lost
    events = api(client, "GET", f"jobs/{batch.id}/events", params={"limit": 500, "order": "asc"}).json()["data"]
    resumed = [e for e in events if e["message"].startswith("Resumed: ")]
    assert resumed and resumed[0]["data"]["resumed_lines"] >= seen, [e["message"] for e in events]
    assert any(e["type"] == "metrics" and "tokens_per_s" in (e["data"] or {}) for e in events)


def test_cancel_keeps_the_finished_lines(openai_client, start_worker, models):
    client = openai_client
    lines = [chat_line(f"c{i}", models[i % 3], f"Describe the number {i}.", max_tokens=16) for i in range(40)]
    batch = client.batches.create(input_file_id=upload_batch(client, lines).id, endpoint="/v1/chat/completions",
                                  completion_window="24h", extra_body={**FP32, "batch_size": 2})
    start_worker()
    wait_for(lambda: client.batches.retrieve(batch.id).request_counts.completed >= 2, 600, 0.2, "finished lines")
    assert client.batches.cancel(batch.id).status in ("cancelling", "cancelled")
    done = wait_batch(client, batch.id, timeout=300)
    assert done.status == "cancelled" and done.cancelled_at and done.cancelling_at
    assert 2 <= done.request_counts.completed < 40
    assert len(read_lines(client, done.output_file_id)) == done.request_counts.completed
