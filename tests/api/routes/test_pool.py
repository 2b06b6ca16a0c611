"""``GET /v1/pool`` (admins): registered workers and the jobs each runs, what waits per queue and per
user, and each user's weight, share, usage and caps."""
from __future__ import annotations

from datetime import timedelta

import pytest

from tests.api.routes.job_kit import KINDS, submit, update_job


def test_the_pool_is_for_admins(client, alice):
    r = client.get("/v1/pool", headers=alice.headers)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert client.get("/v1/pool").status_code == 401


def test_the_pool_shows_workers_their_jobs_pending_counts_and_users_standing(client, app, admin, alice, bob,
                                                                             upload):
    from models.base import utcnow
    from models.crud.usage import add_usage
    from models.db import session_scope
    from models.user import User
    from models.worker import Worker

    now = utcnow()
    with session_scope(app.state.session_factory) as s:
        s.add(Worker(id="w-gpu-1", host="node-a", device_kind="cuda:H200", gpu_indexes=[0, 1], slots=2,
                     memory_total_bytes=141 * 2**30, memory_free_bytes=100 * 2**30, base_models=["smollm2-135m"],
                     queues=["gpu"], version="0.1.0", heartbeat_at=now - timedelta(seconds=5)))
        s.get(User, alice.id).share_weight, s.get(User, alice.id).gpu_hours_per_day = 3.0, 8.0
        add_usage(session=s, owner_id=alice.id, job_id="ftjob-old", kind="fine_tuning", now=now, device_kind="cpu",
                  compute_seconds=1800.0, teacher_cost_usd=0.5)
    running = submit(client, upload, alice, KINDS["fine_tuning"])["id"]
    update_job(app, running, status="running", lease_owner="w-gpu-1", worker_id="w-gpu-1")
    admitted = submit(client, upload, bob, KINDS["batch"])["id"]
    update_job(app, admitted, admitted_at=now, worker_id="w-gpu-1")
    for _ in range(2):
        submit(client, upload, alice, KINDS["generation"])  # io queue
    submit(client, upload, bob, KINDS["fine_tuning"])  # waits in validating_files on io
    r = client.get("/v1/pool", headers=admin.headers)
    assert r.status_code == 200, r.text
    pool = r.json()
    [worker] = pool["workers"]
    assert (worker["id"], worker["host"], worker["state"], worker["slots"], worker["gpu_indexes"]) == (
        "w-gpu-1", "node-a", "alive", 2, [0, 1])
    assert worker["memory_total_bytes"] == 141 * 2**30 and worker["base_models"] == ["smollm2-135m"]
    assert 4 <= worker["heartbeat_age_s"] < 60 and worker["queues"] == ["gpu"]
    assert sorted(worker["jobs"]) == sorted([running, admitted])
    assert pool["pending"] == {"total": 3, "by_queue": {"io": 3}, "by_user": {alice.id: 2, bob.id: 1}}
    users = {u["id"]: u for u in pool["users"]}
    assert (users[alice.id]["pending_jobs"], users[alice.id]["running_jobs"]) == (2, 1)
    assert (users[bob.id]["pending_jobs"], users[bob.id]["running_jobs"]) == (1, 1)
    assert users[alice.id]["share"] == pytest.approx(3 / 4) and users[bob.id]["share"] == pytest.approx(1 / 4)
    assert users[admin.id]["share"] == 0.0  # no work: not in the split
    assert users[alice.id]["usage"]["gpu_hours_today"] == pytest.approx(0.5)
    assert users[alice.id]["usage"]["teacher_usd_today"] == pytest.approx(0.5)
    assert 1700 < users[alice.id]["usage"]["decayed_gpu_seconds"] <= 1800.0 + 1e-6
    assert users[alice.id]["quotas"] == {"max_running_jobs": None, "gpu_hours_per_day": 8.0,
                                         "teacher_usd_per_day": None}
    assert pool["half_life_s"] == app.state.settings.fair_share_half_life_s
