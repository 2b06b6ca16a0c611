"""``/v1/batches`` in OpenAI's shape (checked with the SDK's own types): create, the status mapping as a
worker moves the job on, and 4xx naming the field."""
from __future__ import annotations

from datetime import UTC, datetime

from openai.types import Batch

from api.schemas.batches import BatchRead
from api.schemas.common import ListRead
from tests.api.routes.job_kit import ALPACA_LINE, batch_line, error_of, update_job

URL = "/v1/batches"


def test_a_batch_through_its_statuses(client, app, alice, upload):
    f = upload(alice, batch_line("a") + batch_line("b", model="ft:unknown"), "batch")
    r = client.post(URL, headers=alice.headers, json={"input_file_id": f["id"], "endpoint": "/v1/chat/completions",
                                                      "metadata": {"k": "v"}})
    assert r.status_code == 200, r.text
    batch = Batch.model_validate(r.json())
    BatchRead.model_validate(r.json())
    assert batch.status == "validating" and batch.request_counts.total == 2 and batch.metadata == {"k": "v"}
    events = client.get(f"/v1/jobs/{batch.id}/events", headers=alice.headers).json()["data"]
    assert events[0]["level"] == "warn" and events[0]["data"] == {"unknown_models": ["ft:unknown"]}

    def status(**fields) -> Batch:
        update_job(app, batch.id, **fields)
        got = client.get(f"{URL}/{batch.id}", headers=alice.headers).json()
        BatchRead.model_validate(got)
        return Batch.model_validate(got)

    now = datetime.now(UTC)
    assert status(status="running", started_at=now).status == "in_progress"
    assert status(progress={"phase": "finalizing", "finalizing_at": 5}).finalizing_at == 5
    cancelling = client.post(f"{URL}/{batch.id}/cancel", headers=alice.headers).json()
    assert Batch.model_validate(cancelling).status == "cancelling" and cancelling["cancelling_at"] is not None
    done = status(status="failed", finished_at=now, error={"code": "boom", "message": "it broke", "line": 2})
    assert done.status == "failed" and done.errors.data[0].code == "boom" and done.errors.data[0].line == 2
    page = client.get(URL, headers=alice.headers).json()
    ListRead[BatchRead].model_validate(page)
    assert [Batch.model_validate(b).id for b in page["data"]] == [batch.id] and page["first_id"] == batch.id


def test_bad_batches_are_refused_naming_the_field(client, alice, bob, upload):
    f = upload(alice, batch_line("a"), "batch")["id"]
    cases = [({"input_file_id": f, "endpoint": "/v1/embeddings"}, 422, "endpoint"),
             ({"input_file_id": f, "endpoint": "/v1/completions", "batch_size": 0}, 422, "batch_size"),
             ({"input_file_id": upload(alice, ALPACA_LINE)["id"], "endpoint": "/v1/completions"}, 400,
              "input_file_id"),
             ({"input_file_id": "file-nope", "endpoint": "/v1/completions"}, 404, "input_file_id")]
    for body, code, param in cases:
        r = client.post(URL, headers=alice.headers, json=body)
        assert r.status_code == code and error_of(r)["param"] == param, (body, r.text)
    r = client.post(URL, headers=bob.headers, json={"input_file_id": f, "endpoint": "/v1/chat/completions"})
    assert r.status_code == 404 and error_of(r)["param"] == "input_file_id"
