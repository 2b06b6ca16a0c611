"""Shared-GPU-pool simulation: the product's fair-share policy (``contracts.scheduling.plan``, the
function the dispatcher calls) against plain FIFO on one synthetic trace.

    python -m bench.pool_sim [--seed 42] [--users 1000] [--gpus 64] [--jobs 100000] [--policy both|fair|fifo]

Prints one JSON line per policy, FIFO first and fair last: policy, jobs, gpus, utilisation,
jain_fairness, light/heavy p50/p99 first-start waits (s), preemptions, wall_s, policy_pass_10k_ms.

The trace (``bench.pool_sim_trace``): 1,000 users with Zipf(1) demand; *heavy* users are the top 1%
by device-seconds asked for in the trace (10 users, ~40% of the work), the rest *light*. 64 GPUs in
hosts of 4: 48 x 80 GiB, 16 x 40 GiB; 30% of jobs need 60 GiB per device; 5% are 2-device gangs; run
times log-uniform from 1 minute to 2 hours; Poisson arrivals offering 1.02x the pool's capacity.

Measures:
- utilisation: busy device-seconds / (GPUs x the arrival window, first to last arrival): the pool is
  oversubscribed throughout, so idle devices there are the policy's (or the pass cadence's) doing;
  work later lost to preemption counts as busy.
- jain_fairness: time average, over samples every 10 simulated minutes with work waiting, of Jain's
  index of x_u = devices u runs / u's weighted max-min fair share (water-filling of the GPUs over
  each user's demand, running + pending), over users with pending or running work. Normalising by
  the fair share (Jain's own definition) makes 1.0 mean "exactly fair"; raw device counts would
  punish a light user for asking for one GPU only.
- waits: first start minus arrival, per class.
- policy_pass_10k_ms: median wall time of one ``plan`` pass with estimates over 10,000 pending jobs,
  500 workers (2,000 GPUs, 40 free) and 1,960 running jobs (``bench.pool_sim_trace.pass_scene``).

Simulation choices (``bench.pool_sim_engine``, ``bench.pool_sim_policies``): at most one pass per
simulated minute, only when a job arrived, ended or was preempted, and every 5 minutes while work
waits; the fair policy sees each user's first 4 pending jobs; users' caps are 16 concurrent jobs and
no daily caps; preemption grace 5 minutes, checkpoints every 10 minutes, a preempted job stops at
once and loses the work since its last checkpoint.

Bound for light users' p99 wait: LIGHT_P99_BOUND_S = 1,200 s. A light user's job is first in fair
order (little usage), so it waits for the next fitting slot to free (about a minute on a 64-GPU pool
of jobs averaging ~25 minutes) plus the pass cadence (60 s); when no slot frees for
``preemption_grace_s`` (300 s) it preempts a heavy user's newest job, which stops at the next pass:
300 + 60 + 60 s, with margin for light users who queue several jobs at once.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from bench.pool_sim_engine import Engine, Stats
from bench.pool_sim_policies import SIM_CONFIG, FairPolicy, FifoPolicy
from bench.pool_sim_trace import SimJob, heavy_users, pass_scene, trace, user_ids, workers_for
from contracts.scheduling import PolicyConfig, UserState, WorkerInfo, plan

LIGHT_P99_BOUND_S = 1200.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def heavy_by_demand(jobs: list[SimJob], users: list[str]) -> set[str]:
    """The top 1% of users by device-seconds asked for in the trace."""
    demand = dict.fromkeys(users, 0.0)
    for job in jobs:
        demand[job.owner] += job.devices * job.run_s
    ranked = sorted(users, key=lambda u: -demand[u])
    return set(ranked[:len(heavy_users(users))])


def time_one_pass(seed: int, repeats: int = 5) -> float:
    pending, running, workers, now = pass_scene(seed)
    users = {u: UserState(decayed_gpu_s=1000.0 * (i % 7)) for i, u in enumerate({j.owner_id for j in pending})}
    config = PolicyConfig(default_max_running=64)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        plan(pending=pending, running=running, workers=workers, users=users, now=now, config=config)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def summary(name: str, jobs: list[SimJob], workers: list[WorkerInfo], stats: Stats, heavy: set[str],
            wall_s: float, pass_ms: float) -> dict:
    light_w = [w for j, w in ((j, stats.waits.get(j.id)) for j in jobs) if w is not None and j.owner not in heavy]
    heavy_w = [w for j, w in ((j, stats.waits.get(j.id)) for j in jobs) if w is not None and j.owner in heavy]
    gpus = sum(w.slots for w in workers)
    window = jobs[-1].arrival_s - jobs[0].arrival_s
    return {"policy": name, "jobs": len(stats.waits), "gpus": gpus,
            "utilisation": round(stats.busy_device_s / (gpus * window), 4),
            "jain_fairness": round(statistics.fmean(stats.jain_samples), 4) if stats.jain_samples else None,
            "light_p50_wait_s": round(percentile(light_w, 0.50), 1), "light_p99_wait_s": round(percentile(light_w, 0.99), 1),
            "heavy_p50_wait_s": round(percentile(heavy_w, 0.50), 1), "heavy_p99_wait_s": round(percentile(heavy_w, 0.99), 1),
            "preemptions": stats.preemptions, "wall_s": round(wall_s, 2), "policy_pass_10k_ms": round(pass_ms, 2)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--gpus", type=int, default=64)
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--policy", choices=("both", "fair", "fifo"), default="both")
    ap.add_argument("--pass-repeats", type=int, default=5, help="timings of the 10k-pending pass (0: skip)")
    args = ap.parse_args(argv)
    users = user_ids(args.users)
    workers = workers_for(args.gpus)
    jobs = trace(args.seed, users, args.gpus, args.jobs)
    heavy = heavy_by_demand(jobs, users)
    share = sum(j.devices * j.run_s for j in jobs if j.owner in heavy) / sum(j.devices * j.run_s for j in jobs)
    print(f"# {len(heavy)} heavy users (top 1% by demand) ask for {share:.0%} of the device-seconds; "
          f"light p99 wait bound {LIGHT_P99_BOUND_S:.0f} s", file=sys.stderr)
    pass_ms = time_one_pass(args.seed, args.pass_repeats) if args.pass_repeats else float("nan")
    names = ("fifo", "fair") if args.policy == "both" else (args.policy,)
    for name in names:
        policy = FifoPolicy(workers) if name == "fifo" else FairPolicy(workers)
        start = time.perf_counter()
        stats = Engine(jobs, workers, policy, SIM_CONFIG.half_life_s).run()
        wall = time.perf_counter() - start
        print(json.dumps(summary(name, jobs, workers, stats, heavy, wall, pass_ms)), flush=True)


if __name__ == "__main__":
    main()
