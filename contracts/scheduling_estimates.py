"""Estimated starts: a quick replay of the policy order onto the pool's slots.

Workers with the same (queues, memory, slots) form a class; each class keeps one heap of the times
(seconds from now) its slots free up. A running job frees its devices at its estimated finish
(started_at + the default duration when that is unknown; now when both are unknown or past). Jobs
admitted in this pass start now; then each waiting job, in policy order, takes the earliest-freeing
slot(s) of the fitting class that frees first (least memory on a tie) and holds them for its expected
duration. Approximations, for speed: a gang of d devices takes its class's d earliest slots even when
they sit on different workers; a user at their concurrency cap starts when one of their earlier
(replayed) jobs ends; a daily cap gives no estimate (it lifts when the day turns), nor does a job that
fits no worker; starvation holds and base-model preference are not replayed. Starts are rounded to
whole minutes from ``now``.
"""
from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from operator import attrgetter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from contracts.scheduling import PendingJob, PolicyConfig, RunningJob, UserState, WorkerInfo


_OWNER = attrgetter("owner_id")
_SHAPE = attrgetter("queue", "memory_bytes", "devices")
_DURATION = attrgetter("estimated_duration_s")
_NO_CLASS, _ONE_CLASS, _SOME_CLASSES, _GANG = range(4)


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

    def placement_of(self, shape: tuple[str, int, int]) -> tuple[int, int, list[int]]:
        """How a job of this (queue, memory, devices) shape is replayed: (mode, its one class, its classes)."""
        queue, memory, devices = shape
        fit = [i for i, w in enumerate(self.info) if queue in w.queues and w.memory_bytes >= memory
               and w.slots >= devices]
        if not fit:
            return _NO_CLASS, -1, fit
        if devices > 1:
            return _GANG, -1, fit
        return (_ONE_CLASS, fit[0], fit) if len(fit) == 1 else (_SOME_CLASSES, -1, fit)

    def earliest(self, cls: int, devices: int) -> float:
        """When ``devices`` slots of the class are free (the d-th earliest slot-free time)."""
        heap = self.heaps[cls]
        if devices == 1:
            return heap[0]
        popped = [heapq.heappop(heap) for _ in range(min(devices, len(heap)))]
        for t in popped:
            heapq.heappush(heap, t)
        return popped[-1]


def finish_offset(job: RunningJob, now: datetime, config: PolicyConfig) -> float:
    if job.estimated_finish is not None:
        finish = job.estimated_finish
    elif job.started_at is not None:
        finish = job.started_at + timedelta(seconds=config.default_duration_s)
    else:
        return 0.0
    return max(0.0, (finish - now).total_seconds())


def estimated_starts(order: Sequence[PendingJob], admitted: Sequence[tuple[PendingJob, str]],
                     running: Sequence[RunningJob], workers: Sequence[WorkerInfo],
                     users: Mapping[str, UserState], now: datetime, config: PolicyConfig,
                     no_estimate: Collection[str], pending_per_user: Mapping[str, int],
                     ) -> dict[str, datetime | None]:
    """Each pending job's estimated start (``now`` for the admitted); None for ``no_estimate`` jobs.
    One flat loop: it runs over every pending job."""
    slots = _Slots(workers, running, now, config)
    heaps, default = slots.heaps, config.default_duration_s
    capped = _UserCaps(pending_per_user, running, users, now, config)
    starts: dict[str, datetime | None] = {}
    for job, worker in admitted:
        duration = job.estimated_duration_s if job.estimated_duration_s is not None else default
        _occupy(heaps[slots.class_of[worker]], job.devices, duration)
        capped.started(job.owner_id, 0.0, duration)
        starts[job.id] = now
    caps, finishes, replace = capped.caps, capped.finishes, heapq.heapreplace
    heappop, heappush = heapq.heappop, heapq.heappush
    skip = set(starts) | set(no_estimate)
    starts.update(dict.fromkeys(no_estimate))
    shapes = list(map(_SHAPE, order))  # C-level columns: the loop below is the pass's hottest
    how = {shape: slots.placement_of(shape) for shape in set(shapes)}
    durations = [default if d is None else d for d in map(_DURATION, order)]
    ids, secs, nones = [], [], []
    for job, (mode, cls, fit), duration in zip(order, map(how.__getitem__, shapes), durations):
        if job.id in skip:
            continue
        if mode == _ONE_CLASS:
            heap = heaps[cls]
            start = heap[0]
        elif mode == _SOME_CLASSES:  # the class freeing first; the least memory on a tie
            cls = fit[0]
            start = heaps[cls][0]
            for c in fit:
                if heaps[c][0] < start:
                    cls, start = c, heaps[c][0]
            heap = heaps[cls]
        elif mode == _GANG:
            cls = min(fit, key=lambda c: slots.earliest(c, job.devices))
            heap = heaps[cls]
            start = slots.earliest(cls, job.devices)
        else:
            nones.append(job.id)
            continue
        if caps:  # inline of _UserCaps.started: it runs for every job of a user over their cap
            cap = caps.get(job.owner_id)
            if cap is not None:
                own = finishes[job.owner_id]
                while len(own) >= cap:
                    start = max(start, heappop(own))
                heappush(own, start + duration)
        if mode == _GANG:
            _occupy(heap, job.devices, start + duration)
        else:
            replace(heap, start + duration)
        ids.append(job.id)
        secs.append(start)
    starts.update(dict.fromkeys(nones))
    # Estimates are whole minutes from now: one datetime per distinct minute instead of one per job
    # (building 10,000 datetimes costs as much as the whole replay).
    minutes = [int(x / 60.0 + 0.5) for x in secs]
    at = {m: now + timedelta(0, 60 * m) for m in set(minutes)}
    starts.update(zip(ids, map(at.__getitem__, minutes)))
    return starts


def _occupy(heap: list[float], devices: int, until: float) -> None:
    heapq.heapreplace(heap, until)
    for _ in range(devices - 1):
        heapq.heapreplace(heap, until)


class _UserCaps:
    """Replayed finish times of the users who have more jobs than their concurrency cap."""

    def __init__(self, pending_per_user: Mapping[str, int], running: Sequence[RunningJob],
                 users: Mapping[str, UserState],
                 now: datetime, config: PolicyConfig) -> None:
        jobs = Counter(pending_per_user)
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
