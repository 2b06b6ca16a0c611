"""Generation (self-instruct) jobs: a thin adapter from the runner to ``worker.ml.selfinstruct``.

The engine keeps its request ledger in the job's work dir, and the runner re-delivers a job whose
worker died (or that was paused and resumed) to a handler with the same work dir; ``run_generation``
then replays every answered request from the ledger and sends only what was never answered.

Outcomes: succeeded (a training File + Dataset are published), cancelled/paused by the user (the
runner records which), ``paused`` on its own when the budget cap is reached or the teacher stays
unreachable (resume continues from the ledger), failed on a misconfigured teacher or bad seeds.
"""
from __future__ import annotations

import time

from contracts.configs import GenerationJobConfig
from contracts.seed_tasks import SeedFileError, parse_seed_file
from models.base import utcnow
from models.crud.files import get_owned_file
from models.crud.usage import record_job_totals
from models.job import JobKind
from worker.handlers.generation_dataset import publish_dataset
from worker.handlers.teachers import make_teacher
from worker.job_context import JobContext, JobFailed, JobStopped
from worker.ml.selfinstruct.pipeline import JobAlreadyRunning, run_generation
from worker.ml.selfinstruct.seeds import load_seed_tasks
from worker.ml.teachers.interface import TeacherConfigError, TeacherUnavailableError
from worker.resources import artifact_store

SUMMARY_KEYS = ("n_kept", "n_rejected", "n_instructions", "rounds", "tokens", "cost_usd", "requests_sent",
                "requests_replayed")


def load_seeds(ctx: JobContext) -> list[dict]:
    """The job's seed file (validated again: it is what the engine will use), or the built-in seeds."""
    file_id = ctx.params.get("seed_file")
    if not file_id:
        return load_seed_tasks()
    with ctx.session() as s:
        f = get_owned_file(session=s, file_id=file_id, owner_id=ctx.owner_id)
        if f is None:
            raise JobFailed("file_not_found", f"seed file {file_id} no longer exists", "seed_file")
        path = artifact_store(ctx.settings).path(f.storage_path)
    try:
        return parse_seed_file(path.read_bytes(), ctx.settings.max_line_bytes)
    except FileNotFoundError:
        raise JobFailed("file_not_found", f"the content of seed file {file_id} is missing", "seed_file") from None
    except SeedFileError as exc:
        raise JobFailed("invalid_seed_file", str(exc), "seed_file") from None


def round_message(ev: dict) -> str:
    """e.g. ``Round 3: accepted 5, rejected 12 (rouge_l: 7, blacklist: 3), cost $0.0012 (total $0.0040),
    20/100 instructions``."""
    by_filter = sorted((ev.get("rejected_by_filter") or {}).items(), key=lambda kv: (-kv[1], kv[0]))
    detail = f" ({', '.join(f'{name}: {n}' for name, n in by_filter)})" if by_filter else ""
    return (f"Round {ev['round'] + 1}: accepted {ev['accepted']}, rejected {ev['rejected']}{detail}, "
            f"cost ${ev['cost_usd']:.4f} (total ${ev['total_cost_usd']:.4f}), "
            f"{ev['n_instructions']}/{ev['target']} instructions")


class RoundReporter:
    """The engine's per-round callback: one metrics event and a progress update per round."""

    def __init__(self, ctx: JobContext, cfg: GenerationJobConfig):
        self.ctx, self.cfg = ctx, cfg
        self.tokens, self.t0 = 0, time.monotonic()

    def tokens_per_s(self) -> float:
        """Teacher tokens per second in this attempt (replayed rounds cost no time and count no tokens)."""
        return round(self.tokens / max(time.monotonic() - self.t0, 1e-6), 2)

    def __call__(self, ev: dict) -> None:
        self.tokens += ev["prompt_tokens"] + ev["completion_tokens"]
        self.ctx.emit(round_message(ev), type="metrics", data=ev)
        self.ctx.report_progress(step=min(ev["n_instructions"], self.cfg.num_instructions),
                                 total=self.cfg.num_instructions, tokens=self.tokens,
                                 tokens_per_s=self.tokens_per_s(), n_kept=ev["n_kept"], cost_usd=ev["total_cost_usd"])


def run_exclusively(ctx: JobContext, **kwargs) -> dict:
    """``run_generation``, waiting (up to two leases) for a previous worker that lost its lease but is
    still alive to let go of the work dir's lock; a dead worker's lock is released by the kernel."""
    deadline = time.monotonic() + 2 * ctx.settings.lease_seconds
    while True:
        try:
            return run_generation(**kwargs)
        except JobAlreadyRunning:
            if ctx.should_stop():
                raise JobStopped() from None
            if time.monotonic() > deadline:
                raise JobFailed("job_busy", "another worker still holds this job's work directory", None) from None
            time.sleep(1.0)


def run_generation_job(ctx: JobContext) -> dict:
    cfg = GenerationJobConfig.model_validate(ctx.params["config"])
    seeds = load_seeds(ctx)
    teacher, where = make_teacher(ctx, cfg.teacher, key_field="teacher_api_key_encrypted", param="teacher")
    ctx.emit(f"Generating {cfg.num_instructions} instructions ({cfg.method}) from {len(seeds)} seed tasks with "
             f"teacher {cfg.teacher.model} {where}", data={"n_seed_tasks": len(seeds), "method": cfg.method})
    reporter = RoundReporter(ctx, cfg)
    try:
        out = run_exclusively(ctx, cfg=cfg, seed_tasks=seeds, teacher=teacher, work_dir=ctx.work_dir,
                              on_event=reporter, should_stop=ctx.should_stop)
    except TeacherConfigError as exc:
        raise JobFailed("teacher_error", f"the teacher refused the job: {exc}", "teacher") from None
    except TeacherUnavailableError as exc:
        ctx.emit(f"Paused: the teacher is unavailable after retries ({exc}); resume the job to continue "
                 "from its ledger", level="warn")
        return {"status": "paused", "reason": "teacher_unavailable", "message": str(exc)}
    summary = {k: out[k] for k in SUMMARY_KEYS}
    with ctx.session() as s:
        record_job_totals(session=s, owner_id=ctx.owner_id, job_id=ctx.job_id, kind=JobKind.generation.value,
                          now=utcnow(), teacher_tokens=int(out["tokens"]["total"]),
                          teacher_cost_usd=float(out["cost_usd"]))
    ctx.report_progress(step=min(out["n_instructions"], cfg.num_instructions), total=cfg.num_instructions,
                        tokens=out["tokens"]["total"], tokens_per_s=reporter.tokens_per_s(), force=True,
                        n_kept=out["n_kept"], cost_usd=out["cost_usd"])
    if out["status"] == "paused_budget":
        ctx.emit(f"Paused: the budget cap of ${cfg.budget_usd:.4f} would be exceeded by the next teacher requests "
                 f"(spent ${out['cost_usd']:.4f} so far). Resume with a higher budget_usd to continue; nothing "
                 "already answered will be requested again.", level="warn",
                 data={"budget_usd": cfg.budget_usd, "cost_usd": out["cost_usd"]})
        return {"status": "paused", "reason": "budget", "message": out["message"], **summary}
    if out["status"] == "cancelled":
        return {"status": "cancelled", **summary}
    if out["message"]:
        ctx.emit(out["message"], level="warn")
    published = publish_dataset(ctx, cfg, out)
    ctx.emit(f"Dataset {published['dataset_id']} ready: {published['n_rows']} rows kept, {published['n_rejected']} "
             f"rejected; training file {published['training_file']}; {out['tokens']['total']} tokens, "
             f"${out['cost_usd']:.4f}", data=published)
    return {**summary, **published}
