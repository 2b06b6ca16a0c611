"""Each job kind's stages, as data: the status a job waits in, the pool (Celery queue) that runs it, and
what finishing it means.

The API creates a job in its kind's first stage (``first_stage``); a handler whose stage is done and
whose kind has another one returns ``worker.runner.NextStage`` built from ``next_stage`` -- a stage
is never ended by raising. A stage named ``running`` waits as ``queued``; ``validating_files`` both
waits and runs under its own name (OpenAI's fine-tuning status).
"""
from __future__ import annotations

from dataclasses import dataclass

VALIDATING_FILES = "validating_files"
RUNNING = "running"


@dataclass(frozen=True)
class Stage:
    name: str  # "validating_files" | "running"
    queue: str  # the pool that runs it: "io" (no GPU: HTTP, tokenizers) or "gpu"
    done: str  # what the job's events say when the stage hands over to the next one

    @property
    def waiting_status(self) -> str:
        """The job's status while it waits for a worker of ``queue``."""
        return self.name if self.name == VALIDATING_FILES else "queued"


STAGES: dict[str, tuple[Stage, ...]] = {
    "preflight": (Stage(RUNNING, "io", "Preflight report written"),),
    "fine_tuning": (Stage(VALIDATING_FILES, "io", "Files validated; queued for training on the gpu pool"),
                    Stage(RUNNING, "gpu", "Adapter trained")),
    # A remote teacher keeps the job waiting on HTTP only (io); a local teacher runs in the worker (gpu).
    "generation": (Stage(RUNNING, "io", "Dataset generated"),),
    "batch": (Stage(RUNNING, "gpu", "Batch finished"),),
    "eval": (Stage(RUNNING, "gpu", "Eval report written"),),
    "export": (Stage(RUNNING, "gpu", "Merged model exported"),),
}


def first_stage(kind: str) -> Stage:
    return STAGES[kind][0]


def next_stage(kind: str, current: str) -> Stage | None:
    """The stage after ``current`` (a stage name), or None when ``current`` is the kind's last."""
    names = [s.name for s in STAGES[kind]]
    i = names.index(current)
    return STAGES[kind][i + 1] if i + 1 < len(names) else None


def current_stage(kind: str, name: str) -> Stage:
    return next(s for s in STAGES[kind] if s.name == name)
