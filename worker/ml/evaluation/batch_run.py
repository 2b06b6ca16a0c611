"""Run an OpenAI Batch request list through the engine (eval sets: ``eval_run.py``).

``run_batch`` writes one OpenAI batch output line per request through ``on_result``; a line whose
model is unknown or whose parameters are bad becomes an error line (``line["error"]`` is not None,
``response.status_code`` 4xx/5xx) and the batch goes on. Requests whose ``custom_id`` is in
``done_ids`` are skipped, so a restarted job resumes where its output file ends. ``should_stop`` is
polled between engine calls (cooperative cancel: what is done stays done).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from contracts.decoding import DecodeRequest, DecodeResult, ModelTarget
from contracts.openai_format import (
    RequestError,
    check_results,
    completion_body,
    model_not_found,
    new_id,
    parse_openai_body,
)

if TYPE_CHECKING:
    from contracts.batch_records import BatchRequest
    from worker.ml.decoding.engine import InferenceEngine

ResolveModel = Callable[[str], ModelTarget]  # raises LookupError (KeyError) for an unknown name


@dataclass
class BatchCounts:
    completed: int = 0
    failed: int = 0
    skipped: int = 0  # already in done_ids
    prompt_tokens: int = 0
    completion_tokens: int = 0
    stopped: bool = False  # should_stop() ended the run early

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Parsed:
    request: BatchRequest
    rows: list[DecodeRequest]
    n: int


def batch_line(custom_id: str, status: int, body: dict, error: dict | None = None) -> dict:
    return {"id": new_id("batch_req"), "custom_id": custom_id,
            "response": {"status_code": status, "request_id": new_id("req"), "body": body}, "error": error}


def error_line(custom_id: str, err: RequestError) -> dict:
    return batch_line(custom_id, err.status, err.as_body(), {"code": err.code, "message": err.message})


def run_batch(engine: InferenceEngine, requests: list[BatchRequest], resolve_model: ResolveModel,
              done_ids: set[str], on_result: Callable[[dict], None], should_stop: Callable[[], bool] = lambda: False,
              batch_size: int = 16, default_max_tokens: int = 256, default_temperature: float = 1.0) -> BatchCounts:
    counts = BatchCounts()
    targets: dict[str, ModelTarget | RequestError] = {}
    pending: list[_Parsed] = []

    def emit(line: dict, ok: bool) -> None:
        on_result(line)
        if ok:
            counts.completed += 1
        else:
            counts.failed += 1

    def flush() -> None:
        for item, results in _decode_isolated(engine, pending):
            try:
                check_results(results, item.request.url)
            except RequestError as err:
                emit(error_line(item.request.custom_id, err), False)
                continue
            counts.prompt_tokens += sum(r.prompt_tokens for r in results[::item.n])
            counts.completion_tokens += sum(r.completion_tokens for r in results)
            body = completion_body(item.request.url, item.request.body["model"], results, item.n)
            emit(batch_line(item.request.custom_id, 200, body), True)
        pending.clear()

    for req in requests:
        if req.custom_id in done_ids:
            counts.skipped += 1
            continue
        try:
            target = _resolve(resolve_model, req.body.get("model"), targets)
            rows = parse_openai_body(req.url, req.body, target, default_max_tokens, default_temperature)
        except RequestError as err:
            emit(error_line(req.custom_id, err), False)
            continue
        pending.append(_Parsed(req, rows, req.body.get("n") or 1))
        if sum(len(p.rows) for p in pending) >= batch_size:
            if should_stop():
                counts.stopped = True
                pending.clear()
                return counts
            flush()
    if pending:
        if should_stop():
            counts.stopped = True
            return counts
        flush()
    return counts


def _resolve(resolve_model: ResolveModel, name: Any, cache: dict[str, ModelTarget | RequestError]) -> ModelTarget:
    if not isinstance(name, str):
        raise RequestError("'model' must be a string", "model", "missing_required_parameter")
    if name not in cache:
        try:
            cache[name] = resolve_model(name)
        except LookupError:
            cache[name] = model_not_found(name)
    found = cache[name]
    if isinstance(found, RequestError):
        raise found
    return found


def _decode_isolated(engine: InferenceEngine, items: list[_Parsed]):
    """Decode all items in one engine call; if that call crashes, retry each item alone so that
    one poisonous request fails by itself."""
    rows = [r for item in items for r in item.rows]
    try:
        results = engine.generate(rows)
    except Exception:  # noqa: BLE001 - the engine failed on the mixed call: find the culprit item by item
        for item in items:
            try:
                yield item, engine.generate(item.rows)
            except Exception as exc:  # noqa: BLE001 - one failure must not sink the rest
                yield item, [DecodeResult("", "error", 0, 0, error=f"generation failed: {exc}")]
        return
    start = 0
    for item in items:
        yield item, results[start:start + len(item.rows)]
        start += len(item.rows)


__all__ = ["BatchCounts", "batch_line", "error_line", "run_batch"]
