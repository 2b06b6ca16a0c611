"""Where a client command finds its server and key: flags, then the environment (``LORAFLEET_BASE_URL``,
``LORAFLEET_API_KEY``), then the profile file ``lorafleet login`` writes (mode 0600) under the user's
config dir (``$XDG_CONFIG_HOME/lorafleet/profiles.json``; ``LORAFLEET_CONFIG_DIR`` overrides the dir).

A profile file holds named profiles and which one is the default::

    {"default": "work", "profiles": {"work": {"base_url": "http://gpu-box:8000", "api_key": "lf-..."}}}
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import typer

from lorafleet_cli.client.errors import AUTH, BAD_INPUT, CliError

DEFAULT_PROFILE = "default"


@dataclass(frozen=True)
class ClientConfig:
    base_url: str
    api_key: str | None
    profile: str | None  # the profile it came from, if any value did

    @property
    def api_url(self) -> str:
        """The ``/v1`` root (a base URL given with ``/v1`` is accepted as well)."""
        return self.base_url.rstrip("/").removesuffix("/v1") + "/v1"

    @property
    def server_url(self) -> str:
        return self.base_url.rstrip("/").removesuffix("/v1")


def config_dir() -> Path:
    explicit = os.environ.get("LORAFLEET_CONFIG_DIR")
    return Path(explicit) if explicit else Path(typer.get_app_dir("lorafleet"))


def profiles_path() -> Path:
    return config_dir() / "profiles.json"


def read_profiles(path: Path | None = None) -> dict:
    path = path or profiles_path()
    if not path.exists():
        return {"default": None, "profiles": {}}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read the profile file {path}: {exc}", BAD_INPUT) from None
    if not isinstance(data, dict) or not isinstance(data.get("profiles"), dict):
        raise CliError(f"the profile file {path} is not a lorafleet profile file", BAD_INPUT)
    return data


def write_profile(name: str, base_url: str, api_key: str, *, make_default: bool = True) -> Path:
    """Add or replace profile ``name``; the file (and its dir) are readable by the user only."""
    path = profiles_path()
    data = read_profiles(path)
    data["profiles"][name] = {"base_url": base_url.rstrip("/"), "api_key": api_key}
    if make_default or not data.get("default"):
        data["default"] = name
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def resolve(base_url: str | None = None, api_key: str | None = None, profile: str | None = None,
            *, need_key: bool = True) -> ClientConfig:
    """Each value from the first place that has it: the flag, the environment, the profile."""
    data = read_profiles()
    name = profile or os.environ.get("LORAFLEET_PROFILE") or data.get("default") or DEFAULT_PROFILE
    stored = data["profiles"].get(name)
    if profile and stored is None:
        raise CliError(f"no profile named {profile!r} in {profiles_path()} (run `lorafleet login --profile "
                       f"{profile}`)", BAD_INPUT, param="--profile")
    stored = stored or {}
    url = base_url or os.environ.get("LORAFLEET_BASE_URL") or stored.get("base_url")
    key = api_key or os.environ.get("LORAFLEET_API_KEY") or stored.get("api_key")
    if not url:
        raise CliError("no server: pass --base-url, set LORAFLEET_BASE_URL, or run `lorafleet login`", BAD_INPUT,
                       param="--base-url")
    if need_key and not key:
        raise CliError("no API key: pass --api-key, set LORAFLEET_API_KEY, or run `lorafleet login`", AUTH,
                       param="--api-key")
    return ClientConfig(base_url=url, api_key=key, profile=name if stored else None)


def server_configured(base_url: str | None = None, profile: str | None = None) -> bool:
    """Whether a server URL is given anywhere (decides between HTTP and direct-database ``users create``)."""
    if base_url or os.environ.get("LORAFLEET_BASE_URL"):
        return True
    data = read_profiles()
    name = profile or os.environ.get("LORAFLEET_PROFILE") or data.get("default") or DEFAULT_PROFILE
    return bool((data["profiles"].get(name) or {}).get("base_url"))
