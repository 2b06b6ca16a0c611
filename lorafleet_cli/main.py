"""The lorafleet command.

Server side (run on the server hosts): up (all in one), api, worker, dispatcher, serve,
migrate, demo, models add, users create (direct to the database when no server is configured,
or with --direct).

Client side (an HTTP client of a running server; lorafleet login once, or --base-url / --api-key
or LORAFLEET_BASE_URL / LORAFLEET_API_KEY): login, files, generate, finetune,
batch, eval, jobs, datasets, adapters, models list, chat, users, keys.
Human output by default, --json for scripts. Exit codes: 0 done, 1 the job (or the server) failed,
2 bad usage or input, 3 authentication, 4 not found.
"""
from __future__ import annotations

import sys

import typer

from lorafleet_cli import server_app
from lorafleet_cli.commands import adapters, chat, datasets, files, jobs, login, models, submit, users

app = typer.Typer(name="lorafleet", help=__doc__, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, rich_markup_mode=None)


def build_app() -> typer.Typer:
    server_app.register(app, models.app)
    login.register(app)
    submit.register(app)
    chat.register(app)
    for name, group in (("files", files.app), ("jobs", jobs.app), ("datasets", datasets.app),
                        ("adapters", adapters.app), ("models", models.app), ("users", users.app),
                        ("keys", users.keys_app)):
        app.add_typer(group, name=name)
    return app


build_app()


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit code (a usage error is 2)."""
    try:
        app(args=argv, prog_name="lorafleet")
    except SystemExit as done:
        code = done.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
