"""``client_command``: registers a function as a client command with the options every one of them takes
(``--base-url``, ``--api-key``, ``--profile``, ``--json``), hands it a ``Cli`` (the resolved config, the
API session, the output) and turns a ``CliError`` into its message on stderr and its exit code."""
from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from typing import Annotated, Any

import typer

from lorafleet_cli.client.api import Api
from lorafleet_cli.client.config import ClientConfig, resolve
from lorafleet_cli.client.errors import FAILED, CliError
from lorafleet_cli.client.output import Output

BaseUrl = Annotated[str | None, typer.Option("--base-url", help="server URL, e.g. http://host:8000 "
                                             "[env LORAFLEET_BASE_URL, else the profile]", show_default=False)]
ApiKey = Annotated[str | None, typer.Option("--api-key", help="API key [env LORAFLEET_API_KEY, else the profile]",
                                            show_default=False)]
Profile = Annotated[str | None, typer.Option("--profile", help="profile written by `lorafleet login` "
                                             "[env LORAFLEET_PROFILE, else the default one]", show_default=False)]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON for scripts instead of tables")]
COMMON = {"base_url": BaseUrl, "api_key": ApiKey, "profile": Profile, "as_json": AsJson}
DEFAULTS = {"base_url": None, "api_key": None, "profile": None, "as_json": False}


class Cli:
    """What a client command works with: flags as given, the output, and (on first use) the API session."""

    def __init__(self, base_url: str | None, api_key: str | None, profile: str | None, as_json: bool,
                 need_key: bool):
        self.base_url, self.api_key, self.profile = base_url, api_key, profile
        self.out = Output(as_json)
        self.need_key = need_key
        self._api: Api | None = None

    @property
    def config(self) -> ClientConfig:
        return resolve(self.base_url, self.api_key, self.profile, need_key=self.need_key)

    @property
    def api(self) -> Api:
        if self._api is None:
            self._api = Api(self.config)
        return self._api

    def close(self) -> None:
        if self._api is not None:
            self._api.close()


def client_command(group: typer.Typer, name: str | None = None, *, need_key: bool = True,
                   **command_kwargs: Any) -> Callable[[Callable], Callable]:
    """``@client_command(app, "list")`` over ``def f(cli: Cli, ...)``: a command of ``group``."""

    def register(func: Callable) -> Callable:
        own = [p for p in inspect.signature(func, eval_str=True).parameters.values() if p.name != "cli"]
        common = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=DEFAULTS[n], annotation=a)
                  for n, a in COMMON.items()]

        @functools.wraps(func)
        def command(**kwargs: Any) -> None:
            cli = Cli(*(kwargs.pop(n) for n in COMMON), need_key=need_key)
            try:
                func(cli, **kwargs)
            except CliError as error:
                cli.out.error(error)
                raise typer.Exit(error.exit_code) from None
            except KeyboardInterrupt:
                raise typer.Exit(130) from None
            except Exception as exc:  # a person sees one line, not a traceback (LORAFLEET_DEBUG=1 shows it)
                if os.environ.get("LORAFLEET_DEBUG") or type(exc).__module__.startswith(("typer", "click")):
                    raise  # typer's own (Exit, Abort, usage errors) and debugging
                cli.out.error(CliError(f"the client failed: {type(exc).__name__}: {exc}", FAILED))
                raise typer.Exit(FAILED) from None
            finally:
                cli.close()

        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + common
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        del command.__wrapped__  # typer must read the signature above, not the function's own
        group.command(name, **command_kwargs)(command)
        return func

    return register
