"""Follow a job to its end over its server-sent event stream (``/v1/jobs/{id}/events/stream``): a live rich
progress bar with loss, tokens/s and ETA, each event's message above it. Following returns when the job
ends, or when it pauses (a person's pause, a spent budget, an unreachable teacher: it waits for ``jobs
resume``). A job that did not succeed raises ``CliError`` with exit code 1."""
from __future__ import annotations

import json
import time
from typing import Any

from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from lorafleet_cli.client.command import Cli
from lorafleet_cli.client.errors import JOB_FAILED, CliError

TERMINAL = ("succeeded", "failed", "cancelled")
STOPPED = (*TERMINAL, "paused")  # where following ends
# Where each kind's full view lives (``/v1/jobs/{id}`` is the common part every kind shares).
KIND_VIEWS = {"fine_tuning": "/fine_tuning/jobs/{id}", "generation": "/generation/jobs/{id}",
              "eval": "/evals/jobs/{id}?include_report=false", "batch": "/batches/{id}"}
REFRESH_S = 1.0  # at most one job read a second for kinds whose events carry no step counts


def progress_bar(cli: Cli) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
                    TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[rate]} tok/s"),
                    TextColumn("ETA"), TimeRemainingColumn(), console=cli.out.console, transient=False)


def step_counts(data: dict[str, Any]) -> tuple[int, int] | None:
    step, total = data.get("step"), data.get("total_steps")
    return (int(step), int(total)) if isinstance(step, int | float) and isinstance(total, int | float) and total \
        else None


def fmt(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, int | float) else "-"


class Tracker:
    """The bar's state, from metrics events (step, loss, tokens/s) and, between them, the job's progress."""

    def __init__(self, cli: Cli, progress: Progress | None, job: dict):
        self.cli, self.progress, self.job_id = cli, progress, job["id"]
        self.loss, self.rate, self.last_read, self.status = None, None, 0.0, job["status"]
        self.last_message: str | None = None
        self.task = progress.add_task(f"{job['id']} {job['status']}", total=None, loss="-", rate="-") \
            if progress else None
        self.update_from_job(job)

    def on_event(self, event: dict) -> None:
        data = event.get("data") or {}
        if event.get("type") != "metrics" and not str(event.get("message")).startswith("Job "):
            self.last_message = event.get("message")  # e.g. why it paused (not the "Job paused" line after it)
        if self.progress is not None:
            self.progress.console.print(f"  {event.get('message', '')}", highlight=False, markup=False)
        if event.get("type") == "metrics":
            self.loss = data.get("train_loss", data.get("loss", self.loss))
            self.rate = data.get("tokens_per_s", self.rate)
        counts = step_counts(data)
        if counts:
            self.show(*counts)
        if event.get("type") != "metrics" or (not counts and time.monotonic() - self.last_read > REFRESH_S):
            self.update_from_job(self.cli.api.get(f"/jobs/{self.job_id}"))  # a status may have changed

    def update_from_job(self, job: dict) -> None:
        self.last_read, self.status = time.monotonic(), job["status"]
        progress = job.get("progress") or {}
        self.rate = progress.get("tokens_per_s", self.rate)
        counts = step_counts(progress)
        if self.progress is not None:
            self.progress.update(self.task, description=f"{job['id']} {job['status']}")
        if counts:
            self.show(*counts)

    def show(self, step: int, total: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=step, total=total, loss=fmt(self.loss, ".4f"),
                                 rate=fmt(self.rate, ".0f"))


def follow_job(cli: Cli, job_id: str, view: str | None = None) -> dict:
    """Stream the job's events until it ends; print and return the finished job (as ``view`` answers it: the
    kind's own route, e.g. ``/fine_tuning/jobs/{id}``; default: the kind's full view)."""
    job = cli.api.get(f"/jobs/{job_id}")
    progress = None if cli.out.as_json else progress_bar(cli)
    if progress is not None:
        progress.start()
    try:
        tracker = Tracker(cli, progress, job)
        if job["status"] not in STOPPED:
            with cli.api.sse("GET", f"/jobs/{job_id}/events/stream") as events:
                for name, data in events:
                    if name == "end":
                        break
                    tracker.on_event(json.loads(data))
                    if tracker.status == "paused":
                        break
        job = cli.api.get(f"/jobs/{job_id}")
        tracker.update_from_job(job)
        job = full_view(cli, job, view)
    finally:
        if progress is not None:
            progress.stop()
    report_end(cli, job, tracker.last_message)
    return job


def full_view(cli: Cli, job: dict, view: str | None = None) -> dict:
    """The common job object with its kind's own fields (a batch's counts, an eval's scores...); ``status``
    stays the common one (a batch's own, OpenAI's "completed", is kept as ``kind_status``)."""
    view = view or KIND_VIEWS.get(job.get("kind", ""), "").format(id=job["id"])
    if not view:
        return job
    own = cli.api.get(view)
    return {**job, **own, "status": job["status"], "kind_status": own.get("status", job["status"])}


def report_end(cli: Cli, job: dict, last_message: str | None = None) -> None:
    """Print the finished job; raise exit code 1 unless it succeeded."""
    if cli.out.as_json:
        cli.out.json(job)
    else:
        result = job.get("fine_tuned_model") or (job.get("result") or {}).get("fine_tuned_model")
        cli.out.say(f"{job['id']} {job['status']}" + (f": {result}" if result else ""))
        if job.get("scores"):
            show_scores(cli, job["scores"])
    if job["status"] == "paused":
        raise CliError(f"job {job['id']} paused: {job.get('waiting_reason') or last_message or 'see its events'}; continue it "
                       f"with: lorafleet jobs resume {job['id']}", JOB_FAILED, reported=cli.out.as_json)
    if job["status"] != "succeeded":
        error = job.get("error") or {}
        raise CliError(f"job {job['id']} {job['status']}" + (f": {error['message']}" if error.get("message") else ""),
                       JOB_FAILED, param=error.get("param"), code=error.get("code"), reported=cli.out.as_json)


def show_scores(cli: Cli, scores: list[dict]) -> None:
    """An eval job's score table: a row per model, a column per metric."""
    metrics = list((scores[0].get("scores") or {}) if scores else {})
    cli.out.table(scores, [("model", "name"), *((m, lambda row, m=m: (row.get("scores") or {}).get(m))
                                                for m in metrics)])
