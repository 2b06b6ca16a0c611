"""The fair-share admission policy as a pure function: no database, plain values in, admissions out."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts.scheduling import PendingJob, UserShare, pick_admissions

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def job(id: str, owner: str, minute: int = 0, priority: int = 0) -> PendingJob:
    return PendingJob(id, owner, priority, T0 + timedelta(minutes=minute))


def ids(jobs: list[PendingJob]) -> list[str]:
    return [j.id for j in jobs]


def admit(pending, *, running=(), free=10, users=None, cap=10) -> list[str]:
    return ids(pick_admissions(pending=pending, running_owners=running, free_slots=free, users=users or {},
                               default_cap=cap))


def test_no_free_slot_admits_nothing():
    assert admit([job("a1", "a")], free=0) == []


def test_users_alternate_when_equal():
    pending = [job("a1", "a", 0), job("a2", "a", 1), job("b1", "b", 2), job("b2", "b", 3)]
    assert admit(pending, free=4) == ["a1", "b1", "a2", "b2"]


def test_least_recent_compute_goes_first():
    pending = [job("a1", "a", 0), job("b1", "b", 5)]
    users = {"a": UserShare(recent_compute_s=3600.0), "b": UserShare(recent_compute_s=10.0)}
    assert admit(pending, free=1, users=users) == ["b1"]


def test_weight_divides_usage():
    pending = [job("a1", "a", 0), job("b1", "b", 0)]
    users = {"a": UserShare(weight=10.0, recent_compute_s=1000.0), "b": UserShare(recent_compute_s=200.0)}
    assert admit(pending, free=1, users=users) == ["a1"]  # 1000/10 < 200/1


def test_running_jobs_count_against_their_owner():
    assert admit([job("a1", "a"), job("b1", "b", 1)], running=["a"], free=1) == ["b1"]


def test_cap_per_user():
    pending = [job("a1", "a"), job("a2", "a", 1), job("a3", "a", 2)]
    assert admit(pending, running=["a"], free=5, cap=2) == ["a1"]
    assert admit(pending, free=5, users={"a": UserShare(max_running=3)}, cap=1) == ["a1", "a2", "a3"]


def test_ties_break_by_priority_then_age():
    pending = [job("a1", "a", 0, priority=0), job("b1", "b", 5, priority=3), job("c1", "c", 1)]
    assert admit(pending, free=3) == ["b1", "a1", "c1"]


def test_nonpositive_weight_counts_as_one():
    pending = [job("a1", "a", 0), job("b1", "b", 1)]
    users = {"a": UserShare(weight=0.0, recent_compute_s=100.0), "b": UserShare(recent_compute_s=50.0)}
    assert admit(pending, free=1, users=users) == ["b1"]
