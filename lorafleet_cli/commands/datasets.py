"""``lorafleet datasets list|show|rows``: the datasets generation jobs produce (``/v1/datasets``)."""
from __future__ import annotations

from typing import Annotated

import typer

from lorafleet_cli.client.command import Cli, client_command
from lorafleet_cli.client.output import when

app = typer.Typer(help="generated datasets: kept and rejected rows with their provenance", no_args_is_help=True)
DatasetId = Annotated[str, typer.Argument(help="a dataset id (ds-...)")]
COLUMNS = [("id", "id"), ("name", "name"), ("rows", "n_rows"), ("rejected", "n_rejected"), ("job", "job_id"),
           ("training file", "training_file"), ("cost $", "cost_usd"), ("created", lambda d: when(d.get("created_at")))]


@client_command(app, "list")
def list_datasets(cli: Cli, limit: Annotated[int, typer.Option(min=1, max=100)] = 20) -> None:
    """Your datasets, newest first."""
    page = cli.api.get("/datasets", limit=limit)
    cli.out.table(page["data"], COLUMNS, raw=page)


@client_command(app, "show")
def show(cli: Cli, dataset_id: DatasetId) -> None:
    """A dataset's counts, rejections by filter, tokens and cost."""
    cli.out.record(cli.api.get(f"/datasets/{dataset_id}"))


@client_command(app, "rows")
def rows(cli: Cli, dataset_id: DatasetId,
         verdict: Annotated[str | None, typer.Option(help="kept (default) or rejected")] = None,
         filter_name: Annotated[str | None, typer.Option("--filter", help="rejected rows of this filter only",
                                                         show_default=False)] = None,
         after: Annotated[int | None, typer.Option(help="the index of the last row already seen",
                                                   show_default=False)] = None,
         limit: Annotated[int, typer.Option(min=1, max=1000)] = 20) -> None:
    """A page of a dataset's rows (rejected ones name the filter that dropped them)."""
    page = cli.api.get(f"/datasets/{dataset_id}/rows", verdict=verdict, filter=filter_name, after=after, limit=limit)
    columns = [("#", "index"), ("verdict", "verdict"), ("instruction", "instruction"), ("input", "input"),
               ("output", "output")]
    if any(r.get("verdict") == "rejected" for r in page["data"]):
        columns[2:2] = [("filter", "filter")]
    cli.out.table(page["data"], columns, raw=page)
