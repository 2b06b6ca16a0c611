"""``lorafleet login``: check a server URL and key against ``GET /v1/me`` and save them as a profile."""
from __future__ import annotations

from typing import Annotated

import typer

from lorafleet_cli.client.api import Api
from lorafleet_cli.client.command import Cli, client_command
from lorafleet_cli.client.config import DEFAULT_PROFILE, ClientConfig, write_profile
from lorafleet_cli.client.errors import BAD_INPUT, CliError


def login(cli: Cli,
          default: Annotated[bool, typer.Option("--default/--no-default",
                                                help="make this profile the one used without --profile")] = True,
          ) -> None:
    """Save a server URL and API key (checked against the server) in a profile file readable only by you.

    The key is asked for (hidden) unless --api-key or LORAFLEET_API_KEY gives it."""
    url = cli.base_url or _env("LORAFLEET_BASE_URL") or typer.prompt("Server URL", default="http://127.0.0.1:8000")
    key = cli.api_key or _env("LORAFLEET_API_KEY") or typer.prompt("API key", hide_input=True)
    if not url.startswith(("http://", "https://")):
        raise CliError(f"the server URL must start with http:// or https://, got {url!r}", BAD_INPUT,
                       param="--base-url")
    api = Api(ClientConfig(base_url=url, api_key=key.strip(), profile=None))
    try:
        me = api.get("/me")
    finally:
        api.close()
    name = cli.profile or DEFAULT_PROFILE
    path = write_profile(name, url, key.strip(), make_default=default)
    cli.out.say(f"logged in to {url} as {me['name']}{' (admin)' if me.get('is_admin') else ''}; "
                f"profile {name!r} saved in {path}",
                {"profile": name, "path": str(path), "base_url": url, "user": me})


def _env(name: str) -> str | None:
    import os

    return os.environ.get(name) or None


def register(app: typer.Typer) -> None:
    client_command(app, "login", need_key=False)(login)
