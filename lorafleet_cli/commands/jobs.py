"""``lorafleet jobs list|show|follow|cancel|pause|resume``: every job kind through ``/v1/jobs``."""
from __future__ import annotations

from typing import Annotated

import typer

from lorafleet_cli.client.command import Cli, client_command
from lorafleet_cli.client.follow import follow_job, full_view
from lorafleet_cli.client.output import when

app = typer.Typer(help="list, inspect, follow and control jobs of every kind", no_args_is_help=True)
KINDS = ("preflight", "fine_tuning", "generation", "eval", "batch", "export")
JobId = Annotated[str, typer.Argument(help="a job id (ftjob-..., genjob-..., evaljob-..., batch_...)")]


def percent(job: dict) -> str:
    value = (job.get("progress") or {}).get("percent")
    return f"{value:.0f}%" if isinstance(value, int | float) else ""


COLUMNS = [("id", "id"), ("kind", "kind"), ("status", "status"), ("model", "model"), ("progress", percent),
           ("queue", "queue_position"), ("created", lambda j: when(j.get("created_at"))),
           ("finished", lambda j: when(j.get("finished_at")))]
DETAIL = [("id", "id"), ("kind", "kind"), ("status", "status"), ("model", "model"),
          ("created", lambda j: when(j.get("created_at"))), ("started", lambda j: when(j.get("started_at"))),
          ("finished", lambda j: when(j.get("finished_at"))), ("progress", "progress"),
          ("queue position", "queue_position"), ("estimated start", lambda j: when(j.get("estimated_start"))),
          ("estimated finish", lambda j: when(j.get("estimated_finish"))), ("waiting", "waiting_reason"),
          ("error", "error"), ("result", "result"), ("fine-tuned model", "fine_tuned_model")]


@client_command(app, "list")
def list_jobs(cli: Cli, kind: Annotated[str | None, typer.Option(help=f"only this kind: {', '.join(KINDS)}")] = None,
              status: Annotated[str | None, typer.Option(help="only jobs in this status")] = None,
              limit: Annotated[int, typer.Option(min=1, max=100)] = 20) -> None:
    """Your jobs of every kind, newest first."""
    page = cli.api.get("/jobs", kind=kind, limit=limit)
    rows = [j for j in page["data"] if status is None or j["status"] == status]
    cli.out.table(rows, COLUMNS, raw={**page, "data": rows})


@client_command(app, "show")
def show(cli: Cli, job_id: JobId,
         events: Annotated[int, typer.Option(help="also show this many latest events")] = 0) -> None:
    """One job: status, progress, queue place, result or error."""
    job = full_view(cli, cli.api.get(f"/jobs/{job_id}"))
    if events:
        job["events"] = cli.api.get(f"/jobs/{job_id}/events", limit=events)["data"]
    if cli.out.as_json:
        cli.out.json(job)
        return
    cli.out.record(job, DETAIL)
    for ev in reversed(job.get("events", [])):
        cli.out.say(f"  {when(ev['created_at'])} {ev['level']:7} {ev['message']}")


@client_command(app, "follow")
def follow(cli: Cli, job_id: JobId) -> None:
    """A live progress bar (loss, tokens/s, ETA) and the job's events until it ends; exits 1 unless it
    succeeded."""
    follow_job(cli, job_id)


def _action(verb: str, doc: str):
    def action(cli: Cli, job_id: JobId) -> None:
        job = cli.api.post(f"/jobs/{job_id}/{verb}")
        cli.out.say(f"{job['id']} {job['status']}", job)

    action.__doc__ = doc
    client_command(app, verb)(action)


_action("cancel", "Cancel a job (a running one stops at its next step).")
_action("pause", "Pause a job: a running one stops at its next checkpoint; a waiting one leaves the line.")
_action("resume", "Put a paused job back in line (it continues from its last checkpoint).")
