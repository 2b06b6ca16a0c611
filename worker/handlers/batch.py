"""Batch jobs (OpenAI Batch API): every line of the input file through the inference engine.

Finished lines are appended to ``output.jsonl`` / ``errors.jsonl`` in the job directory and made
durable once per chunk; a restarted attempt skips their ``custom_id``s, so a killed worker never
redoes a finished line. At the end (or on cancel: what is done stays done) both files are registered
as ``batch_output`` files of the job's owner.
"""
from __future__ import annotations

import time

from contracts.batch_records import BatchRequest, parse_batch_file
from contracts.decoding import ModelTarget
from models.crud.model_refs import resolve_model
from worker.handlers.job_files import raise_parse_errors, read_owned_file, register_job_file
from worker.handlers.line_ledger import LineLedger
from worker.job_context import JobContext
from worker.resources import resolve_base_model_dir


def resolve_models(ctx: JobContext, requests: list[BatchRequest]) -> dict[str, tuple[str, ModelTarget] | None]:
    """Each distinct model name -> (base model, target), or None when the owner has no such model."""
    out: dict[str, tuple[str, ModelTarget] | None] = {}
    with ctx.session() as s:
        for name in {r.body["model"] for r in requests}:
            try:
                ref = resolve_model(session=s, name=name, owner_id=ctx.owner_id,
                                    artifacts_dir=ctx.settings.artifacts_dir)
                out[name] = ref.base_model, ref.target
            except LookupError:
                out[name] = None
    return out


def pre_error(req: BatchRequest, endpoint: str, base: str | None, found) -> dict | None:
    """The error line of a request that cannot run in this batch (wrong url, model on another base)."""
    from contracts.openai_format import RequestError
    from worker.ml.evaluation.batch_run import error_line

    if req.url != endpoint:
        return error_line(req.custom_id, RequestError(
            f"this batch's endpoint is {endpoint}; the line asks for {req.url}", "url", "invalid_url"))
    if found is not None and found[0] != base:
        return error_line(req.custom_id, RequestError(
            f"model {req.body['model']!r} is on base model {found[0]!r}; this batch runs on {base!r} "
            "(one base model per batch)", "model", "model_base_mismatch"))
    return None


class Progress:
    """Reports durable progress (rows done/total, tokens/s, ETA) after each chunk is synced."""

    def __init__(self, ctx: JobContext, ledger: LineLedger, total: int, every: int) -> None:
        self.ctx, self.ledger, self.total, self.every = ctx, ledger, total, max(1, every)
        self.t0, self.tokens0, self.last_event = time.monotonic(), ledger.completion_tokens, ledger.resumed

    def counts(self) -> dict:
        return {"total": self.total, "completed": self.ledger.completed, "failed": self.ledger.failed}

    def __call__(self, force: bool = False) -> None:
        done = self.ledger.completed + self.ledger.failed
        tokens = self.ledger.completion_tokens - self.tokens0
        rate = round(tokens / max(time.monotonic() - self.t0, 1e-6), 2)
        self.ctx.report_progress(step=done, total=self.total, tokens=self.ledger.completion_tokens,
                                 tokens_per_s=rate, request_counts=self.counts(), force=force)
        if force or done - self.last_event >= self.every:
            self.last_event = done
            self.ctx.emit(f"{done}/{self.total} requests done ({self.ledger.failed} failed), {rate} tokens/s",
                          type="metrics", data={**self.counts(), "tokens_per_s": rate})


def run_batch_job(ctx: JobContext) -> dict:
    from worker.ml.evaluation.batch_run import run_batch

    p = ctx.params
    parsed = parse_batch_file(read_owned_file(ctx, p["input_file_id"], "input_file_id"), ctx.settings.max_line_bytes)
    raise_parse_errors(parsed, "input_file_id")
    requests, endpoint = parsed.records, p["endpoint"]
    found = resolve_models(ctx, requests)
    base = p.get("base_model")
    ledger = LineLedger(ctx.work_dir)
    if ledger.resumed:
        ctx.emit(f"Resumed: {ledger.resumed} of {len(requests)} lines were already done",
                 data={"resumed_lines": ledger.resumed})
    progress = Progress(ctx, ledger, len(requests), every=max(p.get("batch_size", 16), len(requests) // 10))
    todo, done = [], ledger.done
    for req in requests:
        if req.custom_id in done:
            continue
        err = pre_error(req, endpoint, base, found.get(req.body["model"]))
        if err is not None:
            ledger.write(err)
        else:
            todo.append(req)
    engine = None
    if base is not None and any(found.get(r.body["model"]) for r in todo):
        from worker.ml.decoding.engine import InferenceEngine

        with ctx.session() as s:
            model_dir = resolve_base_model_dir(s, ctx.settings, base)
        engine = InferenceEngine(model_dir, device=ctx.settings.device, dtype=p.get("precision", "auto"),
                                 batch_invariant=ctx.settings.batch_invariant)
        ctx.emit(f"Loaded {base} on {engine.device} ({str(engine.dtype).removeprefix('torch.')}); "
                 f"{len(todo)} requests to run")

    def resolve(name: str) -> ModelTarget:
        hit = found.get(name)
        if hit is None:
            raise LookupError(name)
        return hit[1]

    def should_stop() -> bool:  # run_batch polls this before each chunk: the previous chunk is durable now
        if ledger.sync():
            progress()
        return ctx.should_stop()

    counts = run_batch(engine, todo, resolve, done_ids=set(), on_result=ledger.write, should_stop=should_stop,
                       batch_size=p.get("batch_size", 16))
    ledger.close()
    progress(force=True)
    return finalize(ctx, ledger, len(requests), stopped=counts.stopped)


def finalize(ctx: JobContext, ledger: LineLedger, total: int, stopped: bool) -> dict:
    ctx.report_progress(step=ledger.completed + ledger.failed, total=total, phase="finalizing", force=True,
                        finalizing_at=int(time.time()),
                        request_counts={"total": total, "completed": ledger.completed, "failed": ledger.failed})
    output_id = error_id = None
    if ledger.completed:
        output_id = register_job_file(ctx, ledger.output_path, role="output", filename=f"{ctx.job_id}_output.jsonl",
                                      purpose="batch_output")
    if ledger.failed:
        error_id = register_job_file(ctx, ledger.error_path, role="errors", filename=f"{ctx.job_id}_error.jsonl",
                                     purpose="batch_output")
    usage = {"input_tokens": ledger.prompt_tokens, "output_tokens": ledger.completion_tokens,
             "total_tokens": ledger.prompt_tokens + ledger.completion_tokens}
    ctx.emit(f"{'Stopped' if stopped else 'Finished'}: {ledger.completed} completed, {ledger.failed} failed of "
             f"{total}", data={"output_file_id": output_id, "error_file_id": error_id, **usage})
    return {"output_file_id": output_id, "error_file_id": error_id,
            "request_counts": {"total": total, "completed": ledger.completed, "failed": ledger.failed},
            "usage": usage}
