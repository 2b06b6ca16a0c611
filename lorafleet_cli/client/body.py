"""Building a request body from the command line: ``--set key=value`` pairs (dotted keys nest, values are
JSON when they parse as JSON), a ``--body`` JSON file, and file arguments that may be local paths (uploaded
first) or file ids."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lorafleet_cli.client.api import Api
from lorafleet_cli.client.errors import BAD_INPUT, CliError


def parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def set_path(body: dict, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = body
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise CliError(f"--set {dotted}: {part} is not an object", BAD_INPUT, param="--set")
    node[last] = value


def apply_sets(body: dict, pairs: list[str] | None, option: str = "--set") -> dict:
    """``body`` with each ``key=value`` of ``pairs`` set in it."""
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise CliError(f"{option} takes key=value, got {pair!r}", BAD_INPUT, param=option)
        set_path(body, key.strip(), parse_value(raw))
    return body


def read_body(path: Path | None) -> dict:
    """The JSON object in ``path`` ({} for none)."""
    if path is None:
        return {}
    try:
        body = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CliError(f"--body {path}: {exc}", BAD_INPUT, param="--body") from None
    if not isinstance(body, dict):
        raise CliError(f"--body {path}: a JSON object is needed", BAD_INPUT, param="--body")
    return body


def file_id(api: Api, ref: str, purpose: str) -> str:
    """A file id: ``ref`` itself, or the id of ``ref`` uploaded when it names a local file."""
    path = Path(ref)
    if not path.is_file():
        return ref
    with open(path, "rb") as f:
        return api.post("/files", files={"file": (path.name, f)}, data={"purpose": purpose})["id"]
