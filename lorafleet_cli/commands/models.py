"""``lorafleet models list|show`` (HTTP: base models and adapters you may use). ``models add`` registers a
base model on the server host itself (``lorafleet_cli.server_app``)."""
from __future__ import annotations

from typing import Annotated

import typer

from lorafleet_cli.client.command import Cli, client_command
from lorafleet_cli.client.output import when

app = typer.Typer(help="models: list the ones you may use (HTTP); add a base model (on the server host)",
                  no_args_is_help=True)
COLUMNS = [("id", "id"), ("owned by", "owned_by"), ("kind", "kind"), ("base", "root"),
           ("created", lambda m: when(m.get("created")))]


@client_command(app, "list")
def list_models(cli: Cli) -> None:
    """Base models, your adapters and their checkpoints."""
    page = cli.api.get("/models")
    cli.out.table(page["data"], COLUMNS, raw=page)


@client_command(app, "show")
def show(cli: Cli, model_id: Annotated[str, typer.Argument(help="a model id")]) -> None:
    """One model."""
    cli.out.record(cli.api.get(f"/models/{model_id}"))
