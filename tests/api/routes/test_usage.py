"""``GET /v1/usage``: the ledger in UTC day or hour buckets, OpenAI's page/bucket/result shape; users see
their own usage only, admins anyone's; bad parameters are refused naming the parameter."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

DAY0 = datetime(2026, 3, 4, tzinfo=UTC)


def unix(t: datetime) -> int:
    return int(t.timestamp())


@pytest.fixture
def ledger(app, alice, bob):
    """Alice: fine-tuning at 23:00 on day 0 and a batch at 01:00 on day 1; bob: chat on day 0."""
    from models.crud.usage import add_usage
    from models.db import session_scope

    with session_scope(app.state.session_factory) as s:
        add_usage(session=s, owner_id=alice.id, job_id="ftjob-a", kind="fine_tuning", now=DAY0.replace(hour=23),
                  device_kind="cuda:H200", compute_seconds=600.0, tokens_trained=1000)
        add_usage(session=s, owner_id=alice.id, job_id="batch-a", kind="batch", now=DAY0 + timedelta(hours=25),
                  device_kind="cpu", compute_seconds=60.0, tokens_generated=50)
        add_usage(session=s, owner_id=bob.id, job_id=None, kind="chat", now=DAY0 + timedelta(hours=3),
                  tokens_generated=9)


def get(client, user, **params):
    return client.get("/v1/usage", headers=user.headers, params=params)


def totals(page: dict) -> list[list[tuple]]:
    return [[(r.get("user_id"), r.get("kind"), r["gpu_seconds"], r["tokens_generated"]) for r in b["results"]]
            for b in page["data"]]


def test_a_user_sees_only_their_own_usage_in_day_buckets(client, ledger, alice, bob):
    r = get(client, alice, start_time=unix(DAY0), end_time=unix(DAY0 + timedelta(days=2)))
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["object"] == "page" and page["has_more"] is False
    assert [(b["object"], b["start_time"], b["end_time"]) for b in page["data"]] == [
        ("bucket", unix(DAY0), unix(DAY0 + timedelta(days=1))),
        ("bucket", unix(DAY0 + timedelta(days=1)), unix(DAY0 + timedelta(days=2)))]
    result = page["data"][0]["results"][0]
    assert result["object"] == "usage.result" and result["user_id"] is None  # not grouped by user
    assert (result["gpu_seconds"], result["compute_seconds"], result["tokens_trained"]) == (600.0, 600.0, 1000)
    assert totals(page) == [[(None, None, 600.0, 0)], [(None, None, 60.0, 50)]]  # bob's chat is not there
    bobs = get(client, bob, start_time=unix(DAY0), end_time=unix(DAY0 + timedelta(days=2)), group_by="kind").json()
    assert totals(bobs) == [[(None, "chat", 0.0, 9)], []]
    other = get(client, bob, start_time=unix(DAY0), user_id=alice.id)
    assert other.status_code == 403 and other.json()["error"]["param"] == "user_id"


def test_an_admin_sees_everyone_or_one_user_grouped(client, ledger, admin, alice, bob):
    window = {"start_time": unix(DAY0), "end_time": unix(DAY0 + timedelta(days=1))}
    everyone = get(client, admin, **window, group_by=["user_id", "kind"]).json()
    assert sorted(totals(everyone)[0]) == sorted([(alice.id, "fine_tuning", 600.0, 0), (bob.id, "chat", 0.0, 9)])
    only_bob = get(client, admin, **window, user_id=bob.id, group_by="user_id,device_kind").json()
    assert [(r["user_id"], r["device_kind"]) for r in only_bob["data"][0]["results"]] == [(bob.id, "")]
    by_job = get(client, admin, start_time=unix(DAY0), end_time=unix(DAY0 + timedelta(days=2)), group_by="job_id")
    assert sorted(r["job_id"] or "" for b in by_job.json()["data"] for r in b["results"]) == ["", "batch-a",
                                                                                               "ftjob-a"]


def test_hour_buckets_split_at_the_hour_and_pages_go_on(client, ledger, alice):
    start = DAY0.replace(hour=22)
    r = get(client, alice, start_time=unix(start), end_time=unix(start + timedelta(hours=4)), bucket_width="1h",
            limit=2)
    page = r.json()
    assert [b["start_time"] for b in page["data"]] == [unix(start), unix(start + timedelta(hours=1))]
    assert totals(page) == [[], [(None, None, 600.0, 0)]] and page["has_more"] is True
    rest = get(client, alice, start_time=unix(start), end_time=unix(start + timedelta(hours=4)), bucket_width="1h",
               limit=2, page=page["next_page"]).json()
    assert [b["start_time"] for b in rest["data"]] == [unix(start + timedelta(hours=2)),
                                                        unix(start + timedelta(hours=3))]
    assert totals(rest) == [[], [(None, None, 60.0, 50)]] and rest["has_more"] is False and rest["next_page"] is None


def test_a_window_starting_mid_day_counts_from_its_hour(client, ledger, alice):
    start = DAY0 + timedelta(hours=23, minutes=30)  # inside the 23:00 hour: that hour counts
    page = get(client, alice, start_time=unix(start), end_time=unix(DAY0 + timedelta(days=1, hours=1))).json()
    assert [(b["start_time"], b["end_time"]) for b in page["data"]] == [
        (unix(DAY0.replace(hour=23)), unix(DAY0 + timedelta(days=1))),
        (unix(DAY0 + timedelta(days=1)), unix(DAY0 + timedelta(days=1, hours=1)))]
    assert totals(page) == [[(None, None, 600.0, 0)], []]  # the 01:00 batch is after end_time


@pytest.mark.parametrize("params,status,param", [
    ({}, 422, "start_time"),
    ({"start_time": "yesterday"}, 422, "start_time"),
    ({"start_time": -1}, 422, "start_time"),
    ({"start_time": 10**13}, 422, "start_time"),
    ({"start_time": 1000, "end_time": 1000}, 400, "end_time"),
    ({"start_time": 1000, "group_by": "user_id,project_id"}, 400, "group_by"),
    ({"start_time": 1000, "bucket_width": "1w"}, 422, "bucket_width"),
    ({"start_time": 1000, "limit": 32}, 400, "limit"),
    ({"start_time": 1000, "page": "x"}, 400, "page"),
])
def test_bad_parameters_are_refused_naming_the_parameter(client, alice, params, status, param):
    r = get(client, alice, **params)
    assert r.status_code == status and r.json()["error"]["param"] == param, r.text
