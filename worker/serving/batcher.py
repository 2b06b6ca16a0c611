"""Dynamic batching: requests from many users that arrive within a short window are decoded
together in one engine call (rows of different adapters share the batch).

One background thread owns the engine (engines are not thread-safe). The asyncio side submits a
job and awaits its future; streaming jobs also receive ``(choice_index, text, logprobs)`` deltas on
an asyncio queue, ended by ``None`` (``logprobs``: the ``TokenLogprobs`` of the tokens since the
choice's previous delta, None unless the request asked for log-probabilities). A batch that is running is not joined by later requests: they
form the next batch (no continuous batching).
"""
from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from contracts.decoding import DecodeRequest, DecodeResult, TokenLogprobs


@dataclass
class BatchJob:
    requests: list[DecodeRequest]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    deltas: asyncio.Queue | None = None
    cancelled: bool = False  # set when a streaming client went away: its rows stop early
    submitted_at: float = field(default_factory=time.monotonic)


def _resolve(fut: asyncio.Future, value=None, exc: BaseException | None = None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(value)


def _post(job: BatchJob, fn: Callable, *args) -> None:
    """Run ``fn(*args)`` on the job's event loop (ignored if that loop has closed)."""
    try:
        job.loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:
        pass


class DynamicBatcher:
    def __init__(self, engine_factory: Callable[[], object], window_ms: float = 5.0, max_batch_rows: int = 32) -> None:
        self.engine_factory = engine_factory
        self.window_s = window_ms / 1000.0
        self.max_batch_rows = max_batch_rows
        self.engine = None
        self.batch_job_counts: list[int] = []  # jobs per engine call (observability, tests)
        self._queue: queue.Queue[BatchJob] = queue.Queue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="lorafleet-batcher", daemon=True)

    def start(self, timeout: float | None = None) -> None:
        """Start the thread, build the engine there, and wait until it is ready (or failed)."""
        self._thread.start()
        self._ready.wait(timeout)
        if self._start_error is not None:
            raise RuntimeError(f"engine failed to start: {self._start_error}") from self._start_error

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    async def submit(self, requests: list[DecodeRequest], stream: bool = False) -> BatchJob:
        loop = asyncio.get_running_loop()
        job = BatchJob(requests, loop, loop.create_future(), asyncio.Queue() if stream else None)
        self._queue.put(job)
        return job

    def _loop(self) -> None:
        try:
            self.engine = self.engine_factory()
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._start_error = exc
            self._ready.set()
            return
        self._ready.set()
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            self._run(self._collect(first))

    def _collect(self, first: BatchJob) -> list[BatchJob]:
        jobs, rows = [first], len(first.requests)
        deadline = time.monotonic() + self.window_s
        while rows < self.max_batch_rows:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                job = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            jobs.append(job)
            rows += len(job.requests)
        return jobs

    def _run(self, jobs: list[BatchJob]) -> None:
        """One engine call for all jobs; each job is answered as soon as its own rows are done."""
        owners: list[tuple[BatchJob, int]] = [(job, k) for job in jobs for k in range(len(job.requests))]
        rows = [r for job in jobs for r in job.requests]
        streaming = any(job.deltas is not None for job in jobs)
        pending = {id(job): len(job.requests) for job in jobs}
        done: dict[int, list[DecodeResult | None]] = {id(job): [None] * len(job.requests) for job in jobs}
        unsent: dict[int, list[TokenLogprobs]] = {}  # row -> logprobs not yet sent with a delta

        def on_logprobs(i: int, logprobs: TokenLogprobs) -> None:
            unsent.setdefault(i, []).append(logprobs)

        def on_delta(i: int, text: str) -> None:
            job, choice = owners[i]
            if job.deltas is not None:
                _post(job, job.deltas.put_nowait, (choice, text, _joined(unsent.pop(i, []))))

        def on_result(i: int, result: DecodeResult) -> None:
            job, choice = owners[i]
            if i in unsent:  # the last tokens' logprobs (an end-of-sequence token has no text)
                on_delta(i, "")
            done[id(job)][choice] = result
            pending[id(job)] -= 1
            if pending[id(job)] == 0:
                _finish(job, done[id(job)])

        self.batch_job_counts.append(len(jobs))
        try:
            self.engine.generate(rows, on_delta=on_delta if streaming else None, on_result=on_result,
                                 is_cancelled=lambda i: owners[i][0].cancelled,
                                 on_logprobs=on_logprobs if streaming else None)
        except Exception as exc:  # noqa: BLE001 - every waiting client gets the error, the thread lives on
            for job in jobs:
                if pending[id(job)]:
                    _finish(job, None, exc)


def _joined(parts: list[TokenLogprobs]) -> TokenLogprobs | None:
    """One ``TokenLogprobs`` of consecutive parts (None when there are none)."""
    if not parts:
        return None
    joined = TokenLogprobs()
    for part in parts:
        joined.token_ids += part.token_ids
        joined.token_logprobs += part.token_logprobs
        joined.top_logprobs += part.top_logprobs
        joined.text_offset += part.text_offset
        joined.pieces.update(part.pieces)
    return joined


def _finish(job: BatchJob, results: list | None, exc: BaseException | None = None) -> None:
    _post(job, _resolve, job.future, results, exc)
    if job.deltas is not None:
        _post(job, job.deltas.put_nowait, None)
