"""Estimated starts: a quick replay of the policy order onto the pool's slots.

Workers with the same (queues, memory, slots) form a class; each class keeps one heap of the times
(seconds from now) its slots free up. A running job frees its devices at its estimated finish
(started_at + the default duration when that is unknown; now when both are unknown or past). Jobs
admitted in this pass start now; then each waiting job, in policy order, takes the earliest-freeing
slot(s) of the fitting class that frees first (least memory on a tie) and holds them for its expected
duration. Approximations, for speed: a gang of d devices takes its class's d earliest slots even when
they sit on different workers; a user at their concurrency cap starts when one of their earlier
(replayed) jobs ends; a daily cap gives no estimate (it lifts when the day turns), nor does a job that
fits no worker; starvation holds and base-model preference are not replayed.
"""
from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from itertools import repeat
from operator import attrgetter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from contracts.scheduling import PendingJob, PolicyConfig, RunningJob, UserState, WorkerInfo


_OWNER = attrgetter("owner_id")


class _Slots:
    """Slot-free times per worker class."""

    def __init__(self, workers: Sequence[WorkerInfo], running: Sequence[RunningJob], now: datetime,
                 config: PolicyConfig) -> None:
        self.class_of: dict[str, int] = {}
        self.info: list[WorkerInfo] = []
        self.heaps: list[list[float]] = []
        ids: dict[tuple, int] = {}
        for w in sorted(workers, key=lambda w: (w.memory_bytes, w.id)):
            key = (w.queues, w.memory_bytes, w.slots)
            if key not in ids:
                ids[key] = len(self.info)
                self.info.append(w)
                self.heaps.append([])
            self.class_of[w.id] = ids[key]
        busy: dict[str, list[float]] = defaultdict(list)
        for r in running:
            if r.worker_id in self.class_of:
                busy[r.worker_id].extend([finish_offset(r, now, config)] * r.devices)
        for w in workers:
            times = busy[w.id][:w.slots]
            self.heaps[self.class_of[w.id]].extend(times + [0.0] * (w.slots - len(times)))
        for heap in self.heaps:
            heapq.heapify(heap)
        self.fitting_by_shape: dict[tuple[str, int, int], list[int]] = {}

    def fitting(self, job: PendingJob) -> list[int]:
        """Classes the job fits, least memory first (cached by the job's shape)."""
        key = (job.queue, job.memory_bytes, job.devices)
        if key not in self.fitting_by_shape:
            self.fitting_by_shape[key] = [i for i, w in enumerate(self.info) if job.queue in w.queues
                                          and w.memory_bytes >= job.memory_bytes and w.slots >= job.devices]
        return self.fitting_by_shape[key]

    def earliest(self, cls: int, devices: int) -> float:
        """When ``devices`` slots of the class are free (the d-th earliest slot-free time)."""
        heap = self.heaps[cls]
        if devices == 1:
            return heap[0]
        popped = [heapq.heappop(heap) for _ in range(min(devices, len(heap)))]
        for t in popped:
            heapq.heappush(heap, t)
        return popped[-1]

    def occupy(self, cls: int, devices: int, until: float) -> None:
        heap = self.heaps[cls]
        for _ in range(devices):
            heapq.heapreplace(heap, until)


def finish_offset(job: RunningJob, now: datetime, config: PolicyConfig) -> float:
    if job.estimated_finish is not None:
        finish = job.estimated_finish
    elif job.started_at is not None:
        finish = job.started_at + timedelta(seconds=config.default_duration_s)
    else:
        return 0.0
    return max(0.0, (finish - now).total_seconds())


def estimated_starts(order: Sequence[PendingJob], admitted: Sequence[tuple[PendingJob, str]],
                     running: Sequence[RunningJob], workers: Sequence[WorkerInfo], users: Mapping[str, UserState], now: datetime,
                     config: PolicyConfig, no_estimate: Collection[str]) -> dict[str, datetime | None]:
    """Each pending job's estimated start (``now`` for the admitted); None for ``no_estimate`` jobs.
    One flat loop: it runs over every pending job."""
    slots = _Slots(workers, running, now, config)
    heaps, default = slots.heaps, config.default_duration_s
    capped = _UserCaps(order, running, users, now, config)
    starts: dict[str, datetime | None] = {}
    for job, worker in admitted:
        duration = job.estimated_duration_s if job.estimated_duration_s is not None else default
        _occupy(heaps[slots.class_of[worker]], job.devices, duration)
        capped.started(job.owner_id, 0.0, duration)
        starts[job.id] = now
    fitting, caps, replace = slots.fitting_by_shape, capped.caps, heapq.heapreplace
    admitted_ids, ids, secs = set(starts), [], []
    for job in order:
        jid = job.id
        if jid in admitted_ids:
            continue
        fit = fitting.get((job.queue, job.memory_bytes, job.devices))
        if fit is None:
            fit = slots.fitting(job)
        if not fit or jid in no_estimate:
            starts[jid] = None
            continue
        duration = job.estimated_duration_s
        if duration is None:
            duration = default
        if job.devices == 1:
            cls = fit[0]
            start = heaps[cls][0]
            if len(fit) > 1:
                for c in fit:
                    if heaps[c][0] < start:
                        cls, start = c, heaps[c][0]
            if caps and job.owner_id in caps:
                start = capped.started(job.owner_id, start, duration)
            replace(heaps[cls], start + duration)
        else:
            cls = min(fit, key=lambda c: slots.earliest(c, job.devices))
            start = slots.earliest(cls, job.devices)
            if caps and job.owner_id in caps:
                start = capped.started(job.owner_id, start, duration)
            _occupy(heaps[cls], job.devices, start + duration)
        ids.append(jid)
        secs.append(start)
    # datetimes built by C-level maps: this is a third of the loop's cost when written per job
    starts.update(zip(ids, map(now.__add__, map(timedelta, repeat(0), secs))))
    return starts


def _occupy(heap: list[float], devices: int, until: float) -> None:
    heapq.heapreplace(heap, until)
    for _ in range(devices - 1):
        heapq.heapreplace(heap, until)


class _UserCaps:
    """Replayed finish times of the users who have more jobs than their concurrency cap."""

    def __init__(self, order: Sequence[PendingJob], running: Sequence[RunningJob], users: Mapping[str, UserState],
                 now: datetime, config: PolicyConfig) -> None:
        jobs = Counter(map(_OWNER, order))
        jobs.update(map(_OWNER, running))
        self.caps: dict[str, int] = {}
        for user, n in jobs.items():
            state = users.get(user)
            cap = config.default_max_running if state is None or state.max_running is None else state.max_running
            if n > cap:
                self.caps[user] = max(cap, 1)
        self.finishes: dict[str, list[float]] = defaultdict(list)
        for r in running:
            if r.owner_id in self.caps:
                self.finishes[r.owner_id].append(finish_offset(r, now, config))
        for heap in self.finishes.values():
            heapq.heapify(heap)

    def started(self, user: str, start: float, duration: float) -> float:
        """The start once the user has a free place under their cap; records the job's finish."""
        if user not in self.caps:
            return start
        own = self.finishes[user]
        while len(own) >= self.caps[user]:
            start = max(start, heapq.heappop(own))
        heapq.heappush(own, start + duration)
        return start
