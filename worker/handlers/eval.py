"""Eval jobs: generate every eval row with every model, score them, write one report.

The report (``report.json`` in the job directory, registered as an ``eval_report`` file) holds a
score table per model and the outputs side by side per example; the job's result is that table
plus the report's file id. Every finished generation is appended to ``generations.jsonl`` in the
job directory (durable per chunk); a restarted attempt (a worker that died, a paused job resumed)
loads it and generates only what is missing, so no finished work is lost or paid twice. The
``judge`` metric's replies have a ledger of their own (``eval_judge.LedgeredJudge``); a judge that
stays unreachable pauses the job instead of failing it.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from contracts.configs import SamplingParams, TeacherConfig
from contracts.decoding import DecodeResult, ModelTarget
from contracts.records import parse_eval_file
from models.crud.model_refs import resolve_model
from worker.handlers.eval_judge import LedgeredJudge
from worker.handlers.job_files import raise_parse_errors, read_owned_file, register_job_file
from worker.handlers.line_ledger import ResultLedger
from worker.job_context import JobContext, JobFailed
from worker.ml.teachers.interface import TeacherUnavailableError
from worker.resources import resolve_base_model_dir


def resolve_targets(ctx: JobContext, names: list[str]) -> tuple[str, list[ModelTarget]]:
    """(base model, targets); every model must still exist, be the owner's and share one base."""
    targets, bases = [], set()
    with ctx.session() as s:
        for name in names:
            try:
                ref = resolve_model(session=s, name=name, owner_id=ctx.owner_id,
                                    artifacts_dir=ctx.settings.artifacts_dir)
            except LookupError:
                raise JobFailed("model_not_found", f"The model '{name}' does not exist", "models") from None
            bases.add(ref.base_model)
            targets.append(ref.target)
    if len(bases) != 1:
        raise JobFailed("model_base_mismatch", f"the models are on different base models {sorted(bases)}", "models")
    return bases.pop(), targets


class DecodedRowsLedger:
    """Finished (example, model) decodes of an eval job, durable per chunk: what a restart skips."""

    def __init__(self, path: Path, n_examples: int, targets: list[ModelTarget]) -> None:
        self.targets = targets
        self.done: dict[tuple[int, int], DecodeResult] = {}
        index = {t.name: k for k, t in enumerate(targets)}

        def load(line: dict) -> None:
            if line["model"] in index and line["example"] < n_examples:
                self.done[(line["example"], index[line["model"]])] = DecodeResult(**line["result"])

        self.ledger = ResultLedger(path, "key", on_load=load)

    def save(self, chunk: list[tuple[tuple[int, int], DecodeResult]]) -> None:
        for (i, t), result in chunk:
            name = self.targets[t].name
            self.ledger.write({"key": f"{i}|{name}", "example": i, "model": name, "result": asdict(result)})
        self.ledger.sync()

    def close(self) -> None:
        self.ledger.close()


def run_eval_job(ctx: JobContext) -> dict:
    from worker.ml.decoding.engine import InferenceEngine
    from worker.ml.evaluation.eval_run import run_eval

    p = ctx.params
    parsed = parse_eval_file(read_owned_file(ctx, p["eval_file"], "eval_file"), ctx.settings.max_line_bytes)
    raise_parse_errors(parsed, "eval_file")
    examples = parsed.records[:p["limit"]] if p.get("limit") else parsed.records
    base, targets = resolve_targets(ctx, p["models"])
    with ctx.session() as s:
        model_dir = resolve_base_model_dir(s, ctx.settings, base)
    engine = InferenceEngine(model_dir, device=ctx.settings.device, dtype=p.get("precision", "auto"))
    ctx.emit(f"Scoring {len(targets)} models on {len(examples)} rows ({', '.join(p['metrics'])}) on {engine.device}",
             data={"models": p["models"], "rows": len(examples)})
    ledger = DecodedRowsLedger(ctx.work_dir / "generations.jsonl", len(examples), targets)
    done = ledger.done
    if done:
        ctx.emit(f"Resumed: {len(done)} of {len(examples) * len(targets)} generations were "
                 "already done", data={"resumed_generations": len(done)})
    t0, last = time.monotonic(), [len(done)]

    def on_progress(n_done: int, total: int) -> None:
        rate = round((n_done - len(done)) / max(time.monotonic() - t0, 1e-6), 3)  # this attempt's pace
        ctx.report_progress(step=n_done, total=total, generations_per_s=rate)
        if n_done == total or n_done - last[0] >= max(1, total // 10):
            last[0] = n_done
            ctx.emit(f"{n_done}/{total} generations done ({rate}/s)", type="metrics",
                     data={"done": n_done, "total": total, "generations_per_s": rate})

    def save_and_meter(chunk: list[tuple[tuple[int, int], DecodeResult]]) -> None:
        """Each finished chunk is made durable, then its new tokens go into the usage ledger."""
        ledger.save(chunk)
        ctx.record_usage(tokens_generated=sum(r.completion_tokens for _, r in chunk))

    judge = None
    if p.get("judge"):
        judge = LedgeredJudge(ctx, TeacherConfig.model_validate(p["judge"]), engine)
        ctx.emit(f"Judge: {judge.model} {judge.where} ({len(judge.replies)} judgements already made)")
    try:
        report = run_eval(engine, examples, targets, p["metrics"], on_progress=on_progress,
                          sampling=SamplingParams.model_validate(p["sampling"]), batch_size=p.get("batch_size", 16),
                          should_stop=ctx.should_stop, done=done, on_chunk=save_and_meter,
                          judge=judge)
    except TeacherUnavailableError as exc:
        ctx.emit(f"Paused: the judge is unavailable after retries ({exc}); resume the job to continue (no "
                 "generation or judgement is made twice)", level="warn")
        return {"status": "paused", "reason": "judge_unavailable", "message": str(exc)}
    finally:
        ledger.close()
        if judge is not None:
            judge.close()
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
