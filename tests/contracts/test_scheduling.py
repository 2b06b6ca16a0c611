"""The pool's scheduling policy as a pure function: plain values in, admissions / preemptions /
reasons / positions / estimated starts out."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts.scheduling import (
    PendingJob,
    Plan,
    PolicyConfig,
    RunningJob,
    UserState,
    WorkerInfo,
    decay,
    plan,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
GIB = 1024 ** 3
ROOMY = PolicyConfig(default_max_running=100)


def job(id: str, owner: str, minute: float = 0, **kw) -> PendingJob:
    return PendingJob(id=id, owner_id=owner, queue=kw.pop("queue", "gpu"), priority=kw.pop("priority", 0),
                      enqueued_at=T0 + timedelta(minutes=minute), **kw)


def worker(id: str, slots: int = 1, gib: float = 80, queues=("gpu",), models=()) -> WorkerInfo:
    return WorkerInfo(id=id, queues=frozenset(queues), slots=slots, memory_bytes=int(gib * GIB),
                      base_models=frozenset(models))


def run(id: str, owner: str, on: str, minute: float = 0, **kw) -> RunningJob:
    return RunningJob(id=id, owner_id=owner, queue=kw.pop("queue", "gpu"), worker_id=on,
                      started_at=T0 + timedelta(minutes=minute), **kw)


def do(pending, workers, running=(), users=None, minute: float = 60, config=ROOMY, **kw) -> Plan:
    return plan(pending=pending, running=running, workers=workers, users=users or {},
                now=T0 + timedelta(minutes=minute), config=config, **kw)


def admitted(p: Plan) -> list[str]:
    return [a.job_id for a in p.admissions]


def test_users_interleave_when_all_wait_at_once():
    pending = [job("a1", "a", 0), job("a2", "a", 1), job("a3", "a", 2), job("b1", "b", 3), job("b2", "b", 4)]
    assert admitted(do(pending, [worker("w", slots=4)])) == ["a1", "b1", "a2", "b2"]


def test_a_late_user_goes_before_the_heavy_users_third_job():
    a_jobs = [job(f"a{i}", "a", i) for i in range(1, 7)]
    first = do(a_jobs, [worker("w", slots=2)], minute=10)
    assert admitted(first) == ["a1", "a2"]
    later = do(a_jobs[2:] + [job("b1", "b", 20)], [worker("w", slots=2)], running=[run("a2", "a", "w", 10)],
               users={"a": UserState(decayed_gpu_s=3600.0)}, minute=30)  # a1 ended
    assert admitted(later) == ["b1"]
    assert later.waiting_reasons["a3"] == "waiting for a free slot: 0 job(s) ahead in queue 'gpu'"


def test_weight_divides_usage():
    users = {"a": UserState(weight=10.0, decayed_gpu_s=1000.0), "b": UserState(decayed_gpu_s=200.0)}
    assert admitted(do([job("b1", "b", 0), job("a1", "a", 1)], [worker("w")], users=users)) == ["a1"]
    users["a"] = UserState(weight=1.0, decayed_gpu_s=1000.0)
    assert admitted(do([job("b1", "b", 0), job("a1", "a", 1)], [worker("w")], users=users)) == ["b1"]


def test_priority_orders_a_users_own_jobs_then_fifo():
    pending = [job("old", "a", 0), job("urgent", "a", 5, priority=5), job("newer", "a", 1)]
    p = do(pending, [worker("w")])
    assert admitted(p) == ["urgent"]
    assert p.queue_positions == {"old": 1, "newer": 2}  # the jobs still in line after the admission


def test_concurrent_jobs_cap_waits_with_reason():
    running = [run("r1", "a", "w", 0), run("r2", "a", "w", 1)]
    p = do([job("a3", "a")], [worker("w", slots=4)], running=running, config=PolicyConfig(default_max_running=2))
    assert admitted(p) == []
    assert p.waiting_reasons["a3"] == "user cap: 2 jobs running (max_running_jobs=2)"
    p = do([job("a3", "a")], [worker("w", slots=4)], running=running, users={"a": UserState(max_running=3)},
           config=PolicyConfig(default_max_running=2))
    assert admitted(p) == ["a3"]


def test_daily_gpu_hours_cap_holds_gpu_jobs_only():
    users = {"a": UserState(gpu_hours_per_day=4.0, gpu_hours_today=4.0)}
    workers = [worker("g"), worker("i", queues=("io",))]
    p = do([job("train", "a"), job("fetch", "a", 1, queue="io")], workers, users=users)
    assert admitted(p) == ["fetch"]
    assert p.waiting_reasons["train"] == "daily GPU-hours cap reached: 4.00 of 4.0 h used today"
    assert p.estimated_starts["train"] is None


def test_daily_teacher_budget_holds_teacher_jobs_only():
    users = {"a": UserState(teacher_usd_per_day=5.0, teacher_usd_today=5.0)}
    p = do([job("gen", "a", teacher=True), job("train", "a", 1)], [worker("w", slots=2)], users=users)
    assert admitted(p) == ["train"]
    assert p.waiting_reasons["gen"] == "daily teacher budget reached: $5.00 of $5.00"


def test_a_job_too_big_for_one_worker_goes_to_the_next():
    p = do([job("big", "a", memory_bytes=30 * GIB)], [worker("w1", gib=24), worker("w2", gib=48)])
    assert [(a.job_id, a.worker_id) for a in p.admissions] == [("big", "w2")]


def test_best_fit_then_base_model_preference():
    workers = [worker("huge", gib=80), worker("small", gib=40), worker("tiny", gib=16)]
    assert do([job("j", "a", memory_bytes=20 * GIB)], workers).admissions[0].worker_id == "small"
    workers.append(worker("has-it", gib=80, models=("llama",)))
    p = do([job("j", "a", memory_bytes=20 * GIB, base_model="llama")], workers)
    assert p.admissions[0].worker_id == "has-it"


def test_fits_no_worker_waits_with_reason():
    p = do([job("big", "a", memory_bytes=30 * GIB)], [worker("w1", gib=24), worker("w2", gib=16)])
    assert admitted(p) == []
    assert p.waiting_reasons["big"] == ("no registered worker fits: needs 30.0 GiB per device and 1 device on "
                                        "queue 'gpu'; the largest gpu worker has 24.0 GiB")
    assert p.estimated_starts["big"] is None
    p = do([job("wide", "a", devices=4)], [worker("w1", slots=2)])
    assert "have at most 2 devices" in p.waiting_reasons["wide"]


def test_io_queue_needs_an_io_worker():
    p = do([job("fetch", "a", queue="io")], [worker("g")])
    assert p.waiting_reasons["fetch"] == "no registered worker serves queue 'io'"
    p = do([job("fetch", "a", queue="io")], [worker("g"), worker("i", queues=("io",))])
    assert p.admissions[0].worker_id == "i"


def test_a_gang_needs_all_its_devices_on_one_worker():
    workers = [worker("two", slots=2), worker("four", slots=4)]
    running = [run("r1", "x", "two", 0), run("r2", "x", "four", 0), run("r3", "x", "four", 0)]
    p = do([job("gang", "a", devices=2)], workers, running=running)
    assert [(a.job_id, a.worker_id) for a in p.admissions] == [("gang", "four")]
    running.append(run("r4", "x", "four", 0))
    p = do([job("gang", "a", devices=2)], workers, running=running, minute=2)
    assert admitted(p) == []
    assert p.waiting_reasons["gang"].startswith("waiting for 2 free slots on one worker")


def test_backfill_lets_a_small_job_past_a_blocked_one():
    running = [run("r", "x", "w", 0)]
    pending = [job("gang", "a", 0, devices=2), job("single", "b", 1)]
    assert admitted(do(pending, [worker("w", slots=2)], running=running, minute=2)) == ["single"]


def test_a_gang_past_its_grace_holds_a_worker_against_backfill():
    running = [run("r", "x", "w", 0)]
    pending = [job("gang", "a", 0, devices=2), job("single", "b", 1)]
    p = do(pending, [worker("w", slots=2)], running=running, minute=10)
    assert admitted(p) == []
    assert p.waiting_reasons["gang"] == ("worker w is held for it until 2 slot(s) free there (a gang of a user "
                                         "below their share, waited over 300 s)")


def test_a_starving_job_goes_ahead_of_fair_share():
    users = {"a": UserState(decayed_gpu_s=1e9)}
    pending = [job("old", "a", 0), job("fresh", "b", 100)]
    assert admitted(do(pending, [worker("w")], users=users, minute=120)) == ["old"]
    assert admitted(do(pending, [worker("w")], users=users, minute=30)) == ["fresh"]  # not yet starving


def test_a_starving_gang_holds_its_worker_against_backfill():
    running = [run("r", "x", "w", 0)]
    pending = [job("gang", "a", 0, devices=2), job("single", "b", 100)]
    p = do(pending, [worker("w", slots=2)], running=running, minute=120)
    assert admitted(p) == []
    assert p.waiting_reasons["gang"] == ("worker w is held for it until 2 slot(s) free there "
                                         "(starving: waited over 3600 s)")


def test_only_a_user_below_their_share_starves():
    running = [run(f"r{i}", "a", "w", 0) for i in range(3)]  # a's share of 4 is 2 while b wants 2
    pending = [job("a-old", "a", 0), job("b1", "b", 100), job("b2", "b", 101)]
    p = do(pending, [worker("w", slots=4)], running=running, minute=120)
    assert admitted(p) == ["b1"]
    below = running[:2] + [run(f"x{i}", "x", "w", 0) for i in range(3)]  # a runs 2 of a share of 2.5
    assert admitted(do(pending[:2], [worker("w", slots=6)], running=below, minute=120)) == ["a-old"]


def preemption_case(**kw) -> tuple[list, list, list]:
    workers = [worker("w", slots=2)]
    running = [run("v1", "v", "w", 0, **kw), run("v2", "v", "w", 5, **kw)]
    return workers, running, [job("u1", "u", 10)]


def test_an_under_share_user_preempts_the_newest_job_of_one_above_share():
    workers, running, pending = preemption_case()
    p = do(pending, workers, running=running, minute=20)
    assert p.preemptions == ["v2"]
    assert admitted(p) == []
    assert "preempted" in p.waiting_reasons["u1"]
    stopping = [running[0], run("v2", "v", "w", 5, stopping=True)]
    assert do(pending, workers, running=stopping, minute=21).preemptions == []  # already on its way


def test_no_preemption_within_grace_for_the_same_user_or_unpreemptible_jobs():
    workers, running, pending = preemption_case()
    assert do(pending, workers, running=running, minute=12).preemptions == []  # waited 2 min < grace
    assert do([job("v3", "v", 10)], workers, running=running, minute=20).preemptions == []
    workers, running, pending = preemption_case(preemptible=False)
    assert do(pending, workers, running=running, minute=20).preemptions == []
    assert do(pending, workers, running=preemption_case()[1], minute=20,
              config=PolicyConfig(preemption=False)).preemptions == []


def test_no_preemption_for_a_user_who_runs_something():
    running = [run(f"v{i}", "v", "w", i) for i in range(3)] + [run("u0", "u", "w", 0)]
    pending = [job("u1", "u", 10), job("u2", "u", 11)]  # u's share is 2 of 4, v runs 3
    assert do(pending, [worker("w", slots=4)], running=running, minute=30).preemptions == []
    p = do(pending, [worker("w", slots=3)], running=running[:3], minute=30)  # u runs nothing: share 1.5
    assert p.preemptions == ["v2"]  # for u1 only: u2 would take u past its share


def test_no_preemption_of_a_user_at_their_share():
    running = [run("v1", "v", "w", 0)]
    p = do([job("u1", "u", 10)], [worker("w", slots=1)], running=running, minute=30)
    assert p.preemptions == []  # shares are 0.5 each: v would drop below theirs


def test_decay_halves_each_half_life():
    assert decay(100.0, 86400.0, 86400.0) == 50.0
    assert decay(100.0, 0.0, 86400.0) == 100.0
    assert abs(decay(100.0, 3 * 3600.0, 3600.0) - 12.5) < 1e-9


REPLAY = PolicyConfig(default_max_running=100, preemption=False, starvation_s=1e9, half_life_s=1e12)


def replay(pending: list[PendingJob], workers: list[WorkerInfo], now: datetime) -> tuple[list[str], dict]:
    """Admit with one plan() per finished job (the earliest estimated finish ends first); a finished
    job's GPU-seconds move into its owner's usage. Returns admission order and start times."""
    pending, running, usage, order, starts = list(pending), [], {}, [], {}
    while pending:
        users = {u: UserState(decayed_gpu_s=s) for u, s in usage.items()}
        p = plan(pending=pending, running=running, workers=workers, users=users, now=now, config=REPLAY,
                 with_positions=False, with_estimates=False)
        for adm in p.admissions:
            j = next(j for j in pending if j.id == adm.job_id)
            pending.remove(j)
            running.append(RunningJob(j.id, j.owner_id, j.queue, adm.worker_id, started_at=now,
                                       estimated_finish=now + timedelta(seconds=j.estimated_duration_s)))
            order.append(j.id)
            starts[j.id] = now
        done = min(running, key=lambda r: (r.estimated_finish, r.id))
        running.remove(done)
        usage[done.owner_id] = usage.get(done.owner_id, 0.0) + (done.estimated_finish - done.started_at).total_seconds()
        now = done.estimated_finish
    return order, starts


def mixed_jobs() -> list[PendingJob]:
    spec = [("a", 0, 600), ("a", 1, 1200), ("a", 2, 300), ("b", 3, 900), ("b", 4, 60), ("c", 5, 1800),
            ("a", 6, 120), ("d", 7, 420), ("c", 8, 180), ("b", 9, 720)]  # whole minutes: estimates are
    return [job(f"{u}{i}", u, m, estimated_duration_s=float(d)) for i, (u, m, d) in enumerate(spec)]


def test_positions_and_estimates_match_what_later_passes_admit():
    workers, now = [worker("w")], T0 + timedelta(minutes=30)
    first = plan(pending=mixed_jobs(), running=[], workers=workers, users={}, now=now, config=REPLAY)
    order, starts = replay(mixed_jobs(), workers, now)
    assert admitted(first) == order[:1]
    assert sorted(first.queue_positions, key=first.queue_positions.get) == order[1:]
    assert first.estimated_starts == starts


def test_estimated_starts_grow_with_position_on_one_worker():
    workers, now = [worker("w", slots=2)], T0 + timedelta(minutes=30)
    running = [run("r1", "x", "w", 0, estimated_finish=T0 + timedelta(minutes=50)),
               run("r2", "y", "w", 0, estimated_finish=T0 + timedelta(minutes=40))]
    p = plan(pending=mixed_jobs(), running=running, workers=workers, users={}, now=now, config=REPLAY)
    by_position = sorted(p.queue_positions, key=p.queue_positions.get)
    starts = [p.estimated_starts[j] for j in by_position]
    assert starts == sorted(starts) and starts[0] == T0 + timedelta(minutes=40)
    assert admitted(p) == []
