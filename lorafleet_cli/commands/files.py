"""``lorafleet files upload|list|show|download|delete``: ``/v1/files``. A refused upload prints the
server's reason for every bad line and exits 2."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lorafleet_cli.client.command import Cli, client_command
from lorafleet_cli.client.errors import BAD_INPUT, CliError
from lorafleet_cli.client.output import when

app = typer.Typer(help="upload and manage files (training data, batch inputs, eval sets, seed tasks)",
                  no_args_is_help=True)
PURPOSES = ("fine-tune", "batch", "evals", "user_data", "seed_tasks")
COLUMNS = [("id", "id"), ("purpose", "purpose"), ("filename", "filename"), ("bytes", "bytes"),
           ("records", lambda f: (f.get("info") or {}).get("n_records") if isinstance(f.get("info"), dict)
            else None), ("created", lambda f: when(f.get("created_at")))]
FileId = Annotated[str, typer.Argument(help="a file id (file-...)")]


@client_command(app, "upload")
def upload(cli: Cli, path: Annotated[Path, typer.Argument(help="the file to upload")],
           purpose: Annotated[str, typer.Option(help=f"one of {', '.join(PURPOSES)}")] = "fine-tune") -> None:
    """Upload a file; the server checks every line of a fine-tune, batch or evals file."""
    if not path.is_file():
        raise CliError(f"no such file: {path}", BAD_INPUT, param="path")
    with open(path, "rb") as f:
        body = cli.api.post("/files", files={"file": (path.name, f)}, data={"purpose": purpose})
    cli.out.record(body, COLUMNS)


@client_command(app, "list")
def list_files(cli: Cli, purpose: Annotated[str | None, typer.Option(help="only files of this purpose")] = None,
               limit: Annotated[int, typer.Option(min=1, max=10000)] = 100) -> None:
    """Your files, newest first."""
    page = cli.api.get("/files", purpose=purpose, limit=limit)
    cli.out.table(page["data"], COLUMNS, raw=page)


@client_command(app, "show")
def show(cli: Cli, file_id: FileId) -> None:
    """One file's details."""
    cli.out.record(cli.api.get(f"/files/{file_id}"))


@client_command(app, "download")
def download(cli: Cli, file_id: FileId,
             output: Annotated[Path | None, typer.Option("--output", "-o", help="where to write it (default: "
                                                         "its file name, in this directory)")] = None) -> None:
    """Download a file's content (an uploaded file, a batch's output, a generated dataset)."""
    info = cli.api.get(f"/files/{file_id}")
    dest = output or Path(Path(info.get("filename") or file_id).name)
    if dest.is_dir():
        dest = dest / Path(info.get("filename") or file_id).name
    n = cli.api.download(f"/files/{file_id}/content", dest)
    cli.out.say(f"wrote {n} bytes to {dest}", {"id": file_id, "path": str(dest), "bytes": n})


@client_command(app, "delete")
def delete(cli: Cli, file_id: FileId) -> None:
    """Delete a file."""
    body = cli.api.delete(f"/files/{file_id}")
    cli.out.say(f"deleted {body['id']}", body)
