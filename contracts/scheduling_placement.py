"""Where a job can run during one policy pass: which registered workers fit it at all, which of them
can take it now (free slots), and which workers a starving job holds so later jobs do not backfill.

Free slots only shrink within a pass (admissions, holds), so "nothing with at least this much memory
can take ``devices`` now" is remembered per (queue, devices) and answers later jobs without a scan.
"""
from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from contracts.scheduling_estimates import finish_offset

if TYPE_CHECKING:
    from contracts.scheduling import PendingJob, PolicyConfig, RunningJob, WorkerInfo

GIB = 1024 ** 3


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class Placement:
    """The pass's view of the workers: free slots per worker and an index of those that are open."""

    def __init__(self, workers: Sequence[WorkerInfo], running: Sequence[RunningJob], now: datetime,
                 config: PolicyConfig) -> None:
        self.workers = {w.id: w for w in workers}
        self.now, self.config = now, config
        used: dict[str, int] = defaultdict(int)
        self.running_on: dict[str, list[RunningJob]] = defaultdict(list)
        for r in running:
            used[r.worker_id] += r.devices
            self.running_on[r.worker_id].append(r)
        self.free = {w.id: max(0, w.slots - used[w.id]) for w in workers}
        self.by_queue: dict[str, list[WorkerInfo]] = defaultdict(list)  # each sorted by (memory, id)
        for w in sorted(workers, key=lambda w: (w.memory_bytes, w.id)):
            for q in w.queues:
                self.by_queue[q].append(w)
        self.open_in = {q: [(w.memory_bytes, w.id) for w in ws if self.free[w.id] > 0]
                      for q, ws in self.by_queue.items()}
        self.misfits: dict[tuple[str, int, int], str | None] = {}
        self._fitting: dict[tuple[str, int, int], list[WorkerInfo]] = {}
        self._fitting_ids: dict[tuple[str, int, int], set[str]] = {}
        self._full: dict[tuple[str, int], int] = {}  # (queue, devices) -> least memory that found no slot
        self.held: dict[str, str] = {}  # worker id -> starving job id it is held for
        self._hold_rank: dict[tuple[str, int, int], list[WorkerInfo]] = {}
        self._ends: dict[str, list[float]] = {}  # worker -> its running jobs' finishes (s from now), sorted

    def slots(self, queue: str) -> int:
        return sum(w.slots for w in self.by_queue.get(queue, ()))

    def fitting(self, job: PendingJob) -> list[WorkerInfo]:
        """Registered workers the job fits (queue, memory per device, devices), smallest memory first."""
        key = (job.queue, job.memory_bytes, job.devices)
        if key not in self._fitting:
            self._fitting[key] = [w for w in self.by_queue.get(job.queue, ())
                                  if w.memory_bytes >= job.memory_bytes and w.slots >= job.devices]
        return self._fitting[key]

    def fitting_ids(self, job: PendingJob) -> set[str]:
        key = (job.queue, job.memory_bytes, job.devices)
        if key not in self._fitting_ids:
            self._fitting_ids[key] = {w.id for w in self.fitting(job)}
        return self._fitting_ids[key]

    def misfit_reason(self, job: PendingJob) -> str | None:
        """Why no registered worker could ever run the job, or None when one could."""
        key = (job.queue, job.memory_bytes, job.devices)
        if key not in self.misfits:
            self.misfits[key] = None if self.fitting(job) else self._describe_misfit(job)
        return self.misfits[key]

    def _describe_misfit(self, job: PendingJob) -> str:
        q, workers = job.queue, self.by_queue.get(job.queue)
        if not workers:
            return f"no registered worker serves queue '{q}'"
        needs = (f"no registered worker fits: needs {job.memory_bytes / GIB:.1f} GiB per device and "
                 f"{_plural(job.devices, 'device')} on queue '{q}'")
        largest = max(w.memory_bytes for w in workers)
        if largest < job.memory_bytes:
            return f"{needs}; the largest {q} worker has {largest / GIB:.1f} GiB"
        most = max(w.slots for w in workers if w.memory_bytes >= job.memory_bytes)
        return f"{needs}; the {q} workers with that much memory have at most {_plural(most, 'device')}"

    def take(self, job: PendingJob) -> str | None:
        """Place the job on a worker that can start it now and take its slots; None when none can.

        Preference: a worker that already has the job's base model, then the least memory that fits
        (best fit, keeping big devices for big jobs), then id."""
        key = (job.queue, job.devices)
        if job.memory_bytes >= self._full.get(key, 1 << 62):
            return None
        open_ = self.open_in.get(job.queue, [])
        first = chosen = None
        for _, wid in open_[bisect_left(open_, (job.memory_bytes, "")):]:
            if self.free[wid] < job.devices:
                continue
            first = first or wid
            if job.base_model is None or job.base_model in self.workers[wid].base_models:
                chosen = wid
                break
        chosen = chosen or first
        if chosen is None:
            self._full[key] = job.memory_bytes
            return None
        self.free[chosen] -= job.devices
        if self.free[chosen] == 0:
            self._close(chosen)
        return chosen

    def hold_for(self, job: PendingJob) -> str | None:
        """Hold one fitting worker for a job that cannot start now: the one expected to have the job's
        devices free first, by its running jobs' estimated finishes (then least memory, id; ranked when
        the job's shape is first held for). Nothing else is placed there, so its slots only gather.
        None when every fitting worker is held already."""
        key = (job.queue, job.memory_bytes, job.devices)
        if key not in self._hold_rank:
            self._hold_rank[key] = sorted(self.fitting(job), reverse=True, key=lambda w: (
                self._free_in(w.id, job.devices), w.memory_bytes, w.id))
        rank = self._hold_rank[key]
        while rank and rank[-1].id in self.held:  # kept reversed: the best candidate is last
            rank.pop()
        if not rank:
            return None
        worker = rank.pop()
        self.held[worker.id] = job.id
        self._close(worker.id)
        return worker.id

    def _free_in(self, wid: str, devices: int) -> float:
        """Seconds until ``devices`` slots are free on the worker (by estimated finishes)."""
        short = devices - self.free[wid]
        if short <= 0:
            return 0.0
        ends = self._ends.get(wid)
        if ends is None:
            ends = self._ends[wid] = sorted(finish_offset(r, self.now, self.config) for r in self.running_on[wid]
                                            for _ in range(r.devices))
        return ends[short - 1] if short <= len(ends) else float("inf")

    def _close(self, wid: str) -> None:
        worker = self.workers[wid]
        for q in worker.queues:
            open_ = self.open_in[q]
            i = bisect_left(open_, (worker.memory_bytes, wid))
            if i < len(open_) and open_[i][1] == wid:
                del open_[i]
