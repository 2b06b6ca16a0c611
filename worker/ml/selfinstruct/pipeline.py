"""Job-level driver of a self-instruct generation job: rounds, outputs, events, budget, resume.

``run_generation`` is deterministic given (config, seeds, teacher answers): every round's
sampling is seeded by (job seed, round, slot), and every teacher answer goes through the
ledger. Calling it again on the same ``work_dir`` therefore replays the answered requests from
the ledger (sending none of them again), rebuilds the kept pool, rewrites the outputs and then
carries on where the previous run stopped (crash, cancel or budget pause).

Files in ``work_dir``: ``ledger.jsonl`` (every answer), ``dataset.jsonl`` (kept rows:
instruction/input/output + provenance), ``rejected.jsonl`` (each dropped candidate with the filter
that dropped it; ROUGE rejects carry the nearest kept instruction and its score), ``config.json``
(the job config, without the API key) and a lock file.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock, Timeout

from contracts.configs import GenerationJobConfig
from contracts.seed_tasks import validate_seed_tasks
from worker.ml.evaluation.rouge_l import contains_cjk, get_tokenizer
from worker.ml.selfinstruct.alpaca import run_alpaca_round
from worker.ml.selfinstruct.filters import InstructionFilter
from worker.ml.selfinstruct.generation_state import GenerationState
from worker.ml.selfinstruct.ledger import BudgetExceeded, Ledger, LedgeredTeacher
from worker.ml.selfinstruct.rouge import RougeFilter
from worker.ml.selfinstruct.self_instruct import prompt_seed_pool, run_self_instruct_round
from worker.ml.teachers.interface import Teacher

EventCallback = Callable[[dict], None]


class JobAlreadyRunning(RuntimeError):
    """Another process holds this work dir's lock."""


def resolve_dedup_tokenizer(cfg: GenerationJobConfig, seeds: list[dict]) -> str:
    """``auto``: the CJK-aware tokenizer when any seed instruction has CJK text, else rouge_score's."""
    if cfg.dedup_tokenizer != "auto":
        return cfg.dedup_tokenizer
    return "cjk" if any(contains_cjk(s["instruction"]) for s in seeds) else "rouge_score"


def _build_state(cfg: GenerationJobConfig, seeds: list[dict], teacher: LedgeredTeacher, model: str) -> GenerationState:
    tokenizer = resolve_dedup_tokenizer(cfg, seeds)
    tokenize = get_tokenizer(tokenizer)
    state = GenerationState(cfg=cfg, seeds=seeds, teacher=teacher, model=model,
                            instruction_filter=InstructionFilter(cfg.method, cfg.filters, lambda s: len(tokenize(s))),
                            rouge=None)
    if cfg.filters.rouge:
        pool = prompt_seed_pool(state) if cfg.method == "self_instruct" else seeds
        state.rouge = RougeFilter(cfg.rouge_threshold, tokenizer, pool=[s["instruction"] for s in pool])
    return state


def run_generation(*, cfg: GenerationJobConfig, seed_tasks: list[dict], teacher: Teacher, work_dir: Path,
                   on_event: EventCallback | None = None,
                   should_stop: Callable[[], bool] | None = None) -> dict:
    """Run (or resume) a generation job in ``work_dir``; see the module docstring.

    Returns ``{status: "succeeded"|"cancelled"|"paused_budget", n_kept, n_rejected, n_instructions,
    rounds, tokens: {prompt, completion, total}, cost_usd, requests_sent, requests_replayed,
    dataset_path, rejected_path, message}``. Totals cover every run on this work dir.
    Teacher failures (``TeacherConfigError``, ``TeacherUnavailableError``) propagate; whatever was
    answered before them is in the ledger.
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    seeds = validate_seed_tasks(seed_tasks)
    lock = FileLock(str(work_dir / "generation.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise JobAlreadyRunning(f"another worker is running the generation job in {work_dir}") from None
    ledger = Ledger(work_dir / "ledger.jsonl")
    try:
        (work_dir / "config.json").write_text(cfg.model_dump_json(indent=2))
        ledgered = LedgeredTeacher(teacher, ledger, cfg.budget_usd)
        state = _build_state(cfg, seeds, ledgered, getattr(teacher, "model", "unknown"))
        return _run_rounds(cfg, state, ledger, work_dir, on_event, should_stop)
    finally:
        ledger.close()
        lock.release()


def _run_rounds(cfg: GenerationJobConfig, state: GenerationState, ledger: Ledger, work_dir: Path,
                on_event: EventCallback | None, should_stop: Callable[[], bool] | None) -> dict:
    run_round = run_self_instruct_round if cfg.method == "self_instruct" else run_alpaca_round
    dataset_path, rejected_path = work_dir / "dataset.jsonl", work_dir / "rejected.jsonl"
    status, message = "succeeded", ""
    n_kept = n_rejected = replayed = round_idx = 0
    with open(dataset_path, "w", encoding="utf-8") as kept_f, open(rejected_path, "w", encoding="utf-8") as rej_f:
        while len(state.machine) < cfg.num_instructions:
            if round_idx >= cfg.round_limit:
                message = f"stopped after {round_idx} rounds (max_rounds) with {len(state.machine)} instructions"
                break
            if should_stop is not None and should_stop():
                status, message = "cancelled", "cancelled; kept rows so far are in the dataset"
                break
            try:
                result = run_round(state, round_idx)
            except BudgetExceeded as exc:
                status, message = "paused_budget", str(exc)
                break
            kept_f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in result.rows)
            rej_f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in result.rejects)
            kept_f.flush()
            rej_f.flush()
            n_kept += len(result.rows)
            n_rejected += len(result.rejects)
            replayed += len(result.responses) - result.sent
            if result.sent and on_event is not None:  # rounds replayed whole were reported before
                on_event({
                    "round": round_idx, "accepted": len(result.rows),
                    "accepted_instructions": result.accepted_instructions, "rejected": len(result.rejects),
                    "rejected_by_filter": result.rejected_by_filter,
                    "prompt_tokens": sum(r.prompt_tokens for r in result.responses),
                    "completion_tokens": sum(r.completion_tokens for r in result.responses),
                    "cost_usd": sum(r.cost_usd for r in result.responses),
                    "total_cost_usd": ledger.totals()["cost_usd"],
                    "n_instructions": len(state.machine), "n_kept": n_kept, "target": cfg.num_instructions,
                })
            round_idx += 1
    totals = ledger.totals()
    return {
        "status": status, "message": message, "n_kept": n_kept, "n_rejected": n_rejected,
        "n_instructions": len(state.machine), "rounds": round_idx,
        "tokens": {"prompt": totals["prompt_tokens"], "completion": totals["completion_tokens"],
                   "total": totals["prompt_tokens"] + totals["completion_tokens"]},
        "cost_usd": totals["cost_usd"], "requests_sent": ledger.sent_this_run, "requests_replayed": replayed,
        "dataset_path": str(dataset_path), "rejected_path": str(rejected_path),
    }
