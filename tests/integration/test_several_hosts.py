"""Issue 10, several hosts: two workers with their own host names and data dirs mount one shared artifact
store at different paths. A fine-tuning job trains on host A (the only worker); with A stopped, a batch
job on host B uses the adapter A made. The rows hold paths relative to the store, so B finds the folders
through its own mount; the base model sits once in the shared store, not in either host's data dir."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tests.integration.adapter_rows import BASE, api
from tests.integration.conftest import wait_for
from tests.integration.test_fine_tuning_flow import FAST_HP, TRAIN

pytestmark = [pytest.mark.integration, pytest.mark.slow]
QUICK_HP = {**FAST_HP, "num_epochs": 2}  # 8 examples, 4 a step: 4 steps, a checkpoint every 2


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@pytest.fixture
def shared_store(settings, models_cache, tmp_path) -> tuple[Path, Path]:
    """(the store as host A and the API mount it, the same store through host B's mount point)."""
    store = settings.artifacts_dir
    models = store / "models"
    models.mkdir(parents=True, exist_ok=True)
    cached = models_cache / BASE  # converted already: converting once is tests/worker/ml/test_base_models.py
    if cached.exists() and not (models / BASE).exists():
        (models / BASE).symlink_to(cached)
    mount_b = tmp_path / "mnt" / "lorafleet-artifacts"
    mount_b.parent.mkdir()
    mount_b.symlink_to(store)
    return store, mount_b


def rows_of(settings, model, **where) -> list:
    from models.db import make_engine, make_sessionmaker

    engine = make_engine(settings.sqlalchemy_url, pool_size=1)
    try:
        with make_sessionmaker(engine)() as s:
            return s.query(model).filter_by(**where).all()
    finally:
        engine.dispose()


def test_trained_on_host_a_used_on_host_b(openai_client, start_worker, settings, shared_store, tmp_path):
    from models.registry import Adapter, Checkpoint
    from models.worker import Worker

    client, (store, mount_b) = openai_client, shared_store
    host_a = {"LORAFLEET_DATA_DIR": str(tmp_path / "host-a"), "LORAFLEET_ARTIFACT_URI": str(store)}
    host_b = {"LORAFLEET_DATA_DIR": str(tmp_path / "host-b"), "LORAFLEET_ARTIFACT_URI": f"file://{mount_b}"}

    # Host A trains.
    f = client.files.create(file=("train.jsonl", io.BytesIO(jsonl(TRAIN))), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=BASE, training_file=f.id, suffix="hosts",
                                         method={"type": "supervised", "supervised": {"hyperparameters": QUICK_HP}})
    worker_a = start_worker(queues=("gpu", "io"), env=host_a, host="gpu-a")
    worker_a_id = worker_a.worker_id(settings)
    done = wait_for(lambda: (j := client.fine_tuning.jobs.retrieve(job.id)).status in
                    ("succeeded", "failed", "cancelled") and j, 240, 1.0, "the fine-tuning job")
    assert done.status == "succeeded", (done.error, worker_a.output()[-3000:])
    worker_a.stop()
    (row_a,) = rows_of(settings, Worker, id=worker_a_id)
    assert row_a.host == "gpu-a" and row_a.state == "stopped" and BASE in row_a.base_models

    # The rows hold paths relative to the store; both mounts resolve them to the same folders.
    (adapter,) = rows_of(settings, Adapter, name=done.fine_tuned_model)
    checkpoints = rows_of(settings, Checkpoint, job_id=job.id)
    assert adapter.path.startswith(f"jobs/{job.id}/") and sorted(c.step_number for c in checkpoints) == [2, 4]
    for path in [adapter.path, *(c.path for c in checkpoints)]:
        assert not path.startswith("/") and (mount_b / path / "adapter_config.json").is_file(), path
    # The base model: once, in the shared store; neither host keeps a copy of its own.
    assert [p.name for p in (store / "models").iterdir() if not p.name.startswith(".")] == [BASE]
    assert not (tmp_path / "host-a" / "models").exists() and not (tmp_path / "host-b" / "models").exists()

    # Host B, alone now, runs a batch with the adapter A trained (and one of its checkpoints).
    worker_b = start_worker(queues=("gpu", "io"), env=host_b, host="gpu-b")
    worker_b_id = worker_b.worker_id(settings)
    models = [done.fine_tuned_model, f"{done.fine_tuned_model}:ckpt-step-2"]
    lines = [{"custom_id": f"q{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": model, "messages": [{"role": "user", "content": "What is the secret word?"}],
                       "temperature": 0, "max_tokens": 8}} for i, model in enumerate(models)]
    bf = client.files.create(file=("batch.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
    batch = client.batches.create(input_file_id=bf.id, endpoint="/v1/chat/completions", completion_window="24h")
    batch = wait_for(lambda: (b := client.batches.retrieve(batch.id)).status in ("completed", "failed", "cancelled")
                     and b, 180, 0.5, "the batch on host B")
    assert batch.status == "completed", (batch.errors, worker_b.output()[-3000:])
    assert (batch.request_counts.completed, batch.request_counts.failed) == (2, 0)
    out = [json.loads(line) for line in client.files.content(batch.output_file_id).text.splitlines()]
    assert sorted(o["custom_id"] for o in out) == ["q0", "q1"]
    assert all(o["response"]["status_code"] == 200 and o["response"]["body"]["model"] in models for o in out)
    (row_b,) = rows_of(settings, Worker, id=worker_b_id)
    assert row_b.host == "gpu-b" and row_b.state == "alive" and BASE in row_b.base_models
    # The API (a third mount: the store's own path) serves the adapter B just used.
    tar = api(client, "GET", f"adapters/{adapter.id}/download")
    assert tar.status_code == 200 and tar.content[:2] == b"\x1f\x8b"
