"""Eval jobs: generate every eval row with every model, score them, write one report.

The report (``report.json`` in the job directory, registered as an ``eval_report`` file) holds a
score table per model and the outputs side by side per example; the job's result is that table
plus the report's file id. An eval run is one engine pass: a restarted attempt runs it again.
"""
from __future__ import annotations

import json
import time

from models.db import session_scope
from worker.handlers.job_files import read_owned_file, register_job_file
from worker.ml.configs import SamplingParams
from worker.ml.generation_types import ModelTarget
from worker.ml.records import parse_eval_file
from worker.model_resolver import resolve_target
from worker.resources import resolve_base_model_dir
from worker.runner import JobContext, JobFailed


def resolve_targets(ctx: JobContext, names: list[str]) -> tuple[str, list[ModelTarget]]:
    """(base model, targets); every model must still exist, be the owner's and share one base."""
    targets, bases = [], set()
    with session_scope(ctx.session_factory) as s:
        for name in names:
            try:
                base, target = resolve_target(s, name, ctx.owner_id)
            except LookupError:
                raise JobFailed("model_not_found", f"The model '{name}' does not exist", "models") from None
            bases.add(base)
            targets.append(target)
    if len(bases) != 1:
        raise JobFailed("model_base_mismatch", f"the models are on different base models {sorted(bases)}", "models")
    return bases.pop(), targets


def run_eval_job(ctx: JobContext) -> dict:
    from worker.ml.batch_run import run_eval
    from worker.ml.inference import InferenceEngine

    p = ctx.params
    parsed = parse_eval_file(read_owned_file(ctx, p["eval_file"], "eval_file"), ctx.settings.max_line_bytes)
    if parsed.errors:
        raise JobFailed("invalid_file", f"line {parsed.errors[0].line}: {parsed.errors[0].message}", "eval_file")
    examples = parsed.records[:p["limit"]] if p.get("limit") else parsed.records
    base, targets = resolve_targets(ctx, p["models"])
    with session_scope(ctx.session_factory) as s:
        model_dir = resolve_base_model_dir(s, ctx.settings, base)
    engine = InferenceEngine(model_dir, device=ctx.settings.device, dtype=p.get("precision", "auto"))
    ctx.emit(f"Scoring {len(targets)} models on {len(examples)} rows ({', '.join(p['metrics'])}) on {engine.device}",
             data={"models": p["models"], "rows": len(examples)})
    t0, last = time.monotonic(), [0]

    def on_progress(done: int, total: int) -> None:
        rate = round(done / max(time.monotonic() - t0, 1e-6), 3)
        ctx.report_progress(step=done, total=total, generations_per_s=rate)
        if done == total or done - last[0] >= max(1, total // 10):
            last[0] = done
            ctx.emit(f"{done}/{total} generations done ({rate}/s)", type="metrics",
                     data={"done": done, "total": total, "generations_per_s": rate})

    report = run_eval(engine, examples, targets, p["metrics"], on_progress=on_progress,
                      sampling=SamplingParams.model_validate(p["sampling"]), batch_size=p.get("batch_size", 16),
                      should_stop=ctx.should_stop)
    report = {"eval_file": p["eval_file"], "base_model": base, **report}
    path = ctx.work_dir / "report.json"
    path.write_text(json.dumps(report, ensure_ascii=False, indent=1))
    report_id = register_job_file(ctx, path, role="report", filename=f"{ctx.job_id}_report.json",
                                  purpose="eval_report")
    scores = [{"name": m["name"], "scores": m["scores"], "errors": m["errors"], "examples": m["examples"]}
              for m in report["models"]]
    ctx.emit("Scores: " + "; ".join(f"{m['name']}: " + ", ".join(
        f"{k}={v:.4g}" for k, v in m["scores"].items() if isinstance(v, float)) for m in scores),
             type="metrics", data={"models": scores})
    return {"report_file_id": report_id, "models": scores, "n_examples": len(examples),
            "stopped": report["stopped"]}
