"""Smoke test of the pool simulation on a small trace: both policies run the same jobs, print the
contracted JSON fields (FIFO first, fair last), and fair share serves light users far sooner."""
from __future__ import annotations

import json

from bench import pool_sim

FIELDS = {"policy", "jobs", "gpus", "utilisation", "jain_fairness", "light_p50_wait_s", "light_p99_wait_s",
          "heavy_p50_wait_s", "heavy_p99_wait_s", "preemptions", "wall_s", "policy_pass_10k_ms",
          "policy_pass_with_estimates_10k_ms"}


def test_small_trace_fair_against_fifo(capsys):
    pool_sim.main(["--seed", "7", "--jobs", "3000", "--pass-repeats", "0"])  # 1,000 users, 64 GPUs
    fifo, fair = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert set(fifo) == FIELDS and set(fair) == FIELDS
    assert (fifo["policy"], fair["policy"]) == ("fifo", "fair")
    assert fifo["jobs"] == fair["jobs"] == 3000 and fair["gpus"] == 64
    assert fifo["preemptions"] == 0
    assert fair["utilisation"] > 0.85 and fifo["utilisation"] > 0.85
    assert fair["jain_fairness"] > fifo["jain_fairness"] + 0.2
    assert fair["light_p99_wait_s"] < fifo["light_p99_wait_s"] / 2
