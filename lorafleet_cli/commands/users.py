"""``lorafleet users list|create|update|me`` and ``lorafleet keys list|create|revoke`` (``/v1/users``).

``users create`` has two modes. With a server configured (``--base-url``, ``LORAFLEET_BASE_URL`` or a
profile) it asks the API with an admin key. On the server host with no server configured, or with
``--direct``, it writes the user to the database itself (how the first admin is made; ``--data-dir`` and
the server's environment say which database). Both print the new key on the last line."""
from __future__ import annotations

from typing import Annotated

import typer

from lorafleet_cli import server_app
from lorafleet_cli.client.command import Cli, client_command
from lorafleet_cli.client.config import server_configured
from lorafleet_cli.client.output import when

app = typer.Typer(help="users (admin): list, create, update; `users me` for yourself", no_args_is_help=True)
keys_app = typer.Typer(help="API keys: yours, or (admin) any user's", no_args_is_help=True)
COLUMNS = [("id", "id"), ("name", "name"), ("admin", "is_admin"), ("active", "is_active"), ("weight", "share_weight"),
           ("max running", "max_running_jobs"), ("GPU h/day", "gpu_hours_per_day"),
           ("teacher $/day", "teacher_usd_per_day"), ("created", lambda u: when(u.get("created_at")))]
KEY_COLUMNS = [("id", "id"), ("name", "name"), ("prefix", "prefix"), ("revoked", lambda k: when(k.get("revoked_at"))),
               ("created", lambda k: when(k.get("created_at")))]
Weight = Annotated[float | None, typer.Option("--weight", help="fair-share weight", show_default=False)]
MaxRunning = Annotated[int | None, typer.Option(help="jobs at once", show_default=False)]
GpuHours = Annotated[float | None, typer.Option(help="GPU-hours a day", show_default=False)]
TeacherUsd = Annotated[float | None, typer.Option(help="teacher US dollars a day", show_default=False)]
UserOpt = Annotated[str | None, typer.Option("--user", help="a user id (admin; default: yourself)",
                                             show_default=False)]


def caps(**fields) -> dict:
    return {k: v for k, v in fields.items() if v is not None}


@client_command(app, "list")
def list_users(cli: Cli) -> None:
    """Every user (admin)."""
    page = cli.api.get("/users")
    cli.out.table(page["data"], COLUMNS, raw=page)


@client_command(app, "me")
def me(cli: Cli) -> None:
    """The user your key belongs to."""
    cli.out.record(cli.api.get("/me"))


@client_command(app, "create")
def create(cli: Cli, name: str, admin: Annotated[bool, typer.Option("--admin")] = False,
           direct: Annotated[bool, typer.Option("--direct", help="write the database directly (on the server "
                                                "host), even with a server configured")] = False,
           data_dir: server_app.DataDir = None, weight: Weight = None, max_running_jobs: MaxRunning = None,
           gpu_hours_per_day: GpuHours = None, teacher_usd_per_day: TeacherUsd = None) -> None:
    """Create a user and print its API key (shown once)."""
    if direct or not server_configured(cli.base_url, cli.profile):
        raise typer.Exit(server_app.users_create_direct(name, admin, data_dir))
    body = {"name": name, "is_admin": admin, **caps(share_weight=weight, max_running_jobs=max_running_jobs,
                                                    gpu_hours_per_day=gpu_hours_per_day,
                                                    teacher_usd_per_day=teacher_usd_per_day)}
    user = cli.api.post("/users", body)
    cli.out.say(f"created user {user['name']} ({user['id']}); API key (shown once):\n{user['api_key']}", user)


@client_command(app, "update")
def update(cli: Cli, user_id: str, weight: Weight = None, max_running_jobs: MaxRunning = None,
           gpu_hours_per_day: GpuHours = None, teacher_usd_per_day: TeacherUsd = None,
           active: Annotated[bool | None, typer.Option("--active/--inactive", help="an inactive user's keys stop "
                                                       "working", show_default=False)] = None) -> None:
    """Change a user's fair-share weight, caps or standing (admin)."""
    body = caps(share_weight=weight, max_running_jobs=max_running_jobs, gpu_hours_per_day=gpu_hours_per_day,
                teacher_usd_per_day=teacher_usd_per_day, is_active=active)
    cli.out.record(cli.api.patch(f"/users/{user_id}", body), COLUMNS)


def target(cli: Cli, user: str | None) -> str:
    return user or cli.api.get("/me")["id"]


@client_command(keys_app, "list")
def list_keys(cli: Cli, user: UserOpt = None) -> None:
    """API keys (their prefixes, never the keys)."""
    page = cli.api.get(f"/users/{target(cli, user)}/keys")
    cli.out.table(page["data"], KEY_COLUMNS, raw=page)


@client_command(keys_app, "create")
def create_key(cli: Cli, user: UserOpt = None,
               name: Annotated[str | None, typer.Option(help="a label for the key", show_default=False)] = None) -> None:
    """A new API key (shown once)."""
    key = cli.api.post(f"/users/{target(cli, user)}/keys", {"name": name} if name else None)
    cli.out.say(f"created key {key['id']}; API key (shown once):\n{key['api_key']}", key)


@client_command(keys_app, "revoke")
def revoke_key(cli: Cli, key_id: str, user: UserOpt = None) -> None:
    """Revoke an API key: it stops working at once."""
    key = cli.api.delete(f"/users/{target(cli, user)}/keys/{key_id}")
    cli.out.say(f"revoked {key['id']}", key)
