"""``lorafleet adapters list|show|download|export|delete``: trained LoRA adapters (``/v1/adapters``)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lorafleet_cli.client.command import Cli, client_command
from lorafleet_cli.client.follow import follow_job
from lorafleet_cli.client.output import when

app = typer.Typer(help="trained LoRA adapters: list, download, merge-export", no_args_is_help=True)
AdapterId = Annotated[str, typer.Argument(help="an adapter id or its model name (ft:...)")]
COLUMNS = [("id", "id"), ("name", "name"), ("base model", "base_model"), ("job", "fine_tuning_job_id"),
           ("checkpoints", lambda a: len(a.get("checkpoints") or [])), ("created", lambda a: when(a.get("created_at")))]


@client_command(app, "list")
def list_adapters(cli: Cli) -> None:
    """Your adapters, newest first."""
    page = cli.api.get("/adapters")
    cli.out.table(page["data"], COLUMNS, raw=page)


@client_command(app, "show")
def show(cli: Cli, adapter_id: AdapterId) -> None:
    """An adapter's config, metrics and checkpoints."""
    cli.out.record(cli.api.get(f"/adapters/{adapter_id}"))


@client_command(app, "download")
def download(cli: Cli, adapter_id: AdapterId,
             output: Annotated[Path | None, typer.Option("--output", "-o", help="the .tar.gz to write (default: "
                                                         "<adapter id>.tar.gz here)", show_default=False)] = None) -> None:
    """Download the adapter's PEFT folder as a .tar.gz."""
    adapter = cli.api.get(f"/adapters/{adapter_id}")
    dest = output or Path(f"{adapter['id']}.tar.gz")
    n = cli.api.download(f"/adapters/{adapter['id']}/download", dest)
    cli.out.say(f"wrote {n} bytes to {dest}", {"id": adapter["id"], "path": str(dest), "bytes": n})


@client_command(app, "export")
def export(cli: Cli, adapter_id: AdapterId,
           export_format: Annotated[str, typer.Option("--format", help="hf: a merged Hugging Face folder; gguf: "
                                                      "one .gguf for llama.cpp / Ollama (a file id)")] = "hf",
           dtype: Annotated[str | None, typer.Option(help="gguf only: f16, f32 or q8_0 (server default f16)",
                                                     show_default=False)] = None,
           follow: Annotated[bool, typer.Option("--follow", "-f", help="follow the export job to its end")] = False,
           ) -> None:
    """Merge the adapter into its base model's weights (an export job); with --format gguf the result
    names a file to fetch with ``lorafleet files download``."""
    body = {"format": export_format, **({"dtype": dtype} if dtype else {})}
    job = cli.api.post(f"/adapters/{adapter_id}/export", body)
    if follow:
        follow_job(cli, job["id"])
        return
    cli.out.say(f"submitted {job['id']} ({job['status']}); follow it with: lorafleet jobs follow {job['id']}", job)


@client_command(app, "delete")
def delete(cli: Cli, adapter_id: AdapterId) -> None:
    """Delete an adapter and its files."""
    body = cli.api.delete(f"/adapters/{adapter_id}")
    cli.out.say(f"deleted {body['id']}", body)
