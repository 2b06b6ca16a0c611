"""The usage ledger: increments land in one row per hour bucket (also under concurrent writers), and the
readers (the usage endpoint's buckets, today's totals for the caps, decayed GPU-seconds for fair share)."""
from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from models.crud.usage import (
    add_usage,
    decayed_gpu_seconds,
    record_job_totals,
    usage_between,
    usage_today,
)
from models.job import UsageRecord

T = datetime(2026, 3, 4, 10, 20, tzinfo=UTC)


def rows(session, **where) -> list[UsageRecord]:
    q = select(UsageRecord).where(*[getattr(UsageRecord, k) == v for k, v in where.items()])
    return list(session.execute(q.order_by(UsageRecord.bucket_start)).scalars())


def test_two_adds_in_one_hour_make_one_row_and_the_next_hour_another(session, alice):
    for t in (T, T + timedelta(minutes=30)):
        add_usage(session=session, owner_id=alice.id, job_id="ftjob-1", kind="fine_tuning", now=t,
                  device_kind="cuda:H200", compute_seconds=10.0, tokens_trained=100)
    assert [(r.bucket_start, r.compute_seconds, r.tokens_trained) for r in rows(session)] == [
        (datetime(2026, 3, 4, 10, tzinfo=UTC), 20.0, 200)]
    add_usage(session=session, owner_id=alice.id, job_id="ftjob-1", kind="fine_tuning", now=T + timedelta(hours=1),
              device_kind="cuda:H200", compute_seconds=5.0)
    assert [r.compute_seconds for r in rows(session)] == [20.0, 5.0]


def test_serving_rows_without_a_job_still_make_one_row_per_hour(session, alice):
    for _ in range(3):
        add_usage(session=session, owner_id=alice.id, job_id=None, kind="chat", now=T, tokens_generated=7)
    assert [(r.job_id, r.tokens_generated) for r in rows(session)] == [(None, 21)]


def test_nothing_to_add_writes_no_row(session, alice):
    add_usage(session=session, owner_id=alice.id, job_id="j", kind="batch", now=T)
    assert rows(session) == []


def test_concurrent_adds_on_postgres_sum_correctly(session_factory, session, alice):
    session.commit()
    n_threads, per_thread = 8, 10
    barrier = threading.Barrier(n_threads)

    def writer():
        barrier.wait()
        for _ in range(per_thread):
            with session_factory() as s:
                add_usage(session=s, owner_id=alice.id, job_id="ftjob-race", kind="fine_tuning", now=T,
                          device_kind="cpu", compute_seconds=1.0, tokens_trained=2)
                s.commit()

    threads = [threading.Thread(target=writer) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    [row] = rows(session, job_id="ftjob-race")
    assert (row.compute_seconds, row.tokens_trained) == (n_threads * per_thread, 2 * n_threads * per_thread)


def test_teacher_totals_become_increments(session, alice):
    record_job_totals(session=session, owner_id=alice.id, job_id="genjob-1", kind="generation", teacher_tokens=100,
                      teacher_cost_usd=0.5, now=T)
    record_job_totals(session=session, owner_id=alice.id, job_id="genjob-1", kind="generation", teacher_tokens=250,
                      teacher_cost_usd=1.25, now=T + timedelta(hours=2))  # a resumed run reports its new totals
    got = rows(session, job_id="genjob-1")
    assert [(r.teacher_tokens, r.teacher_cost_usd) for r in got] == [(100, 0.5), (150, pytest.approx(0.75))]
    record_job_totals(session=session, owner_id=alice.id, job_id="genjob-1", kind="generation", teacher_tokens=250,
                      teacher_cost_usd=1.25, now=T + timedelta(hours=3))  # the same totals again: nothing new
    assert len(rows(session, job_id="genjob-1")) == 2


def test_usage_between_buckets_by_day_or_hour_and_groups(session, alice, bob):
    add_usage(session=session, owner_id=alice.id, job_id="a1", kind="fine_tuning", now=T.replace(hour=23),
              device_kind="cpu", compute_seconds=30.0)
    add_usage(session=session, owner_id=alice.id, job_id="a2", kind="batch", now=T + timedelta(days=1),
              device_kind="cpu", compute_seconds=20.0, tokens_generated=5)
    add_usage(session=session, owner_id=bob.id, job_id=None, kind="chat", now=T, tokens_generated=9)
    add_usage(session=session, owner_id=alice.id, job_id="g", kind="generation", now=T, teacher_tokens=3,
              teacher_cost_usd=0.25)
    day0 = datetime(2026, 3, 4, tzinfo=UTC)
    by_day = usage_between(session, [alice.id], day0, day0 + timedelta(days=2), [], "1d")
    assert [(b.start, b.end) for b in by_day] == [(day0, day0 + timedelta(days=1)),
                                                   (day0 + timedelta(days=1), day0 + timedelta(days=2))]
    assert [(r["gpu_seconds"], r["teacher_cost_usd"], r["tokens_generated"]) for b in by_day for r in b.results] == [
        (30.0, 0.25, 0), (20.0, 0.0, 5)]  # bob's chat is not alice's; the teacher row is no GPU time
    by_kind = usage_between(session, None, day0, day0 + timedelta(days=1), ["user_id", "kind"], "1d")
    assert sorted((r["user_id"], r["kind"]) for r in by_kind[0].results) == sorted(
        [(alice.id, "fine_tuning"), (alice.id, "generation"), (bob.id, "chat")])
    hourly = usage_between(session, None, T.replace(hour=22), T.replace(hour=23, minute=59), [], "1h")
    assert [(b.start.hour, [r["compute_seconds"] for r in b.results]) for b in hourly] == [(22, []), (23, [30.0])]


def test_usage_today_counts_the_utc_day_only(session, alice, bob):
    add_usage(session=session, owner_id=alice.id, job_id="a", kind="fine_tuning", now=T - timedelta(days=1),
              device_kind="cpu", compute_seconds=3600.0)
    add_usage(session=session, owner_id=alice.id, job_id="a", kind="fine_tuning", now=T, device_kind="cpu",
              compute_seconds=1800.0)
    add_usage(session=session, owner_id=alice.id, job_id="g", kind="generation", now=T, compute_seconds=999.0,
              teacher_cost_usd=2.5)  # no device kind: remote teacher time is not GPU time
    assert usage_today(session, [alice.id, bob.id], T) == {alice.id: (0.5, 2.5), bob.id: (0.0, 0.0)}


def test_decayed_gpu_seconds_halve_per_half_life_from_the_bucket_middle(session, alice, bob):
    now = datetime(2026, 3, 4, 12, 30, tzinfo=UTC)  # the middle of the 12:00 bucket
    add_usage(session=session, owner_id=alice.id, job_id="a", kind="fine_tuning", now=now, device_kind="cpu",
              compute_seconds=100.0)
    add_usage(session=session, owner_id=alice.id, job_id="a", kind="fine_tuning", now=now - timedelta(hours=2),
              device_kind="cpu", compute_seconds=100.0)
    add_usage(session=session, owner_id=bob.id, job_id="b", kind="fine_tuning", now=now - timedelta(hours=30),
              device_kind="cpu", compute_seconds=1e9)  # older than 10 half-lives: left out
    got = decayed_gpu_seconds(session, [alice.id, bob.id], now, half_life_s=7200.0)
    assert got == {alice.id: pytest.approx(100.0 + 50.0), bob.id: 0.0}
    add_usage(session=session, owner_id=alice.id, job_id="running", kind="batch", now=now, device_kind="cpu",
              compute_seconds=40.0)  # a job still running: the policy charges it otherwise
    got = decayed_gpu_seconds(session, [alice.id], now, half_life_s=7200.0, exclude_job_ids=["running"])
    assert got == {alice.id: pytest.approx(150.0)}
    assert decayed_gpu_seconds(session, [alice.id], now, half_life_s=7200.0) == {alice.id: pytest.approx(190.0)}
