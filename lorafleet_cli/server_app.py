"""The flags of the server-side commands (``up``, ``serve``, ``api``, ``worker``, ``dispatcher``, ``migrate``,
``demo``, ``models add``, direct-database ``users create``), as they were under argparse: each parses into
a namespace for its ``server_commands.cmd_*``. Their modules are imported only when one runs."""
from __future__ import annotations

from argparse import Namespace
from typing import Annotated, Literal

import typer

from lorafleet_cli import server_commands as run

DataDir = Annotated[str | None, typer.Option("--data-dir", help="state directory (default: $LORAFLEET_DATA_DIR or "
                                             "~/.local/share/lorafleet)", show_default=False)]
Dtype = Annotated[Literal["auto", "float32", "bfloat16", "float16"] | None, typer.Option(
    "--dtype", show_default=False,
    help="inference precision (default: $LORAFLEET_INFERENCE_DTYPE or auto: bf16 where native)")]
Deterministic = Annotated[bool, typer.Option(
    "--deterministic", help="batch-invariant decoding: a greedy answer does not depend on the requests that shared "
    "its batch; each request is decoded alone (slower). $LORAFLEET_BATCH_INVARIANT")]
Loglevel = Annotated[str, typer.Option("--loglevel")]


def up(host: Annotated[str, typer.Option()] = "127.0.0.1",
       port: Annotated[int, typer.Option(help="API port; the inference server takes the next one")] = 8000,
       base_model: Annotated[str, typer.Option(help="base model the inference server serves")] =
       "smollm2-135m-instruct",
       dtype: Dtype = None, deterministic: Deterministic = False, data_dir: DataDir = None) -> None:
    """API + workers on one machine (SQLite + embedded broker by default)."""
    raise typer.Exit(run.cmd_up(Namespace(**locals())) or 0)


def serve(host: Annotated[str, typer.Option()] = "127.0.0.1", port: Annotated[int, typer.Option()] = 8001,
          base_model: Annotated[str, typer.Option()] = "smollm2-135m-instruct",
          dtype: Dtype = None, deterministic: Deterministic = False, data_dir: DataDir = None) -> None:
    """The inference server for one base model (internal)."""
    raise typer.Exit(run.cmd_serve(Namespace(**locals())) or 0)


def api(host: Annotated[str, typer.Option()] = "0.0.0.0", port: Annotated[int, typer.Option()] = 8000,
        workers: Annotated[int | None, typer.Option(help="API processes (default LORAFLEET_API_WORKERS, 0 = one "
                                                         "per CPU core)", show_default=False)] = None,
        data_dir: DataDir = None) -> None:
    """Serve the HTTP API (production)."""
    raise typer.Exit(run.cmd_api(Namespace(**locals())) or 0)


def worker(queues: Annotated[str, typer.Option(help="pools it serves, comma-separated: gpu,io")] = "gpu",
           gpus: Annotated[str | None, typer.Option("--gpus", "--gpu", help="CUDA device indexes it owns, e.g. 0 or "
                                                    "0,1 (default: CPU)", show_default=False)] = None,
           concurrency: Annotated[int, typer.Option(help="jobs at once on a CPU host")] = 1,
           memory_gb: Annotated[float | None, typer.Option(help="memory per device to advertise (default: "
                                                           "detected)", show_default=False)] = None,
           host: Annotated[str | None, typer.Option(help="host name to register under (default: "
                                                    "$LORAFLEET_HOSTNAME or the machine's)", show_default=False)] = None,
           loglevel: Loglevel = "INFO", data_dir: DataDir = None) -> None:
    """A registered worker: Celery on its own queue (one per GPU)."""
    raise typer.Exit(run.cmd_worker(Namespace(**locals())) or 0)


def dispatcher(loglevel: Loglevel = "INFO", data_dir: DataDir = None) -> None:
    """The admission loop (fair share, placement, preemption)."""
    raise typer.Exit(run.cmd_dispatcher(Namespace(**locals())) or 0)


def migrate(data_dir: DataDir = None) -> None:
    """Apply database migrations."""
    raise typer.Exit(run.cmd_migrate(Namespace(**locals())) or 0)


def demo(port: Annotated[int, typer.Option()] = 8765, data_dir: DataDir = None) -> None:
    """The whole pipeline on the embedded default, on CPU."""
    raise typer.Exit(run.cmd_demo(Namespace(**locals())) or 0)


def models_add(name: str, path: str, description: Annotated[str, typer.Option()] = "",
               data_dir: DataDir = None) -> None:
    """Register a local HF checkpoint dir or GGUF file (on the server host: writes the database directly)."""
    raise typer.Exit(run.cmd_models_add(Namespace(**locals())) or 0)


def users_create_direct(name: str, admin: bool, data_dir: str | None) -> int:
    """``users create`` on the server host: the user is written to the database directly."""
    return run.cmd_users_create(Namespace(name=name, admin=admin, data_dir=data_dir)) or 0


def register(app: typer.Typer, models_app: typer.Typer) -> None:
    for command in (up, serve, api, worker, dispatcher, migrate, demo):
        app.command(command.__name__)(command)
    models_app.command("add")(models_add)
