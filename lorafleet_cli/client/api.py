"""One HTTP session with the server: JSON in and out, errors turned into ``CliError`` with their exit code,
server-sent event streams read line by line, downloads written to disk."""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from lorafleet_cli.client.config import ClientConfig
from lorafleet_cli.client.errors import FAILED, CliError

TIMEOUT = httpx.Timeout(60.0, connect=10.0)


class Api:
    def __init__(self, config: ClientConfig, timeout: httpx.Timeout = TIMEOUT):
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self.config = config
        self.http = httpx.Client(base_url=config.api_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The answer's JSON (None for an empty body); any error status raises ``CliError``."""
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        check(response)
        return response.json() if response.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: dict | None = None, **kwargs: Any) -> Any:
        return self.request("POST", path, json=body, **kwargs) if body is not None else \
            self.request("POST", path, **kwargs)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def patch(self, path: str, body: dict) -> Any:
        return self.request("PATCH", path, json=body)

    def download(self, path: str, dest: Path) -> int:
        """Stream ``path``'s bytes into ``dest``; returns how many were written."""
        written = 0
        try:
            with self.http.stream("GET", path) as response:
                if response.is_error:
                    response.read()
                    check(response)
                with open(dest, "wb") as f:
                    for chunk in response.iter_bytes():
                        written += f.write(chunk)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        return written

    @contextmanager
    def sse(self, method: str, path: str, **kwargs: Any) -> Iterator[Iterator[tuple[str, str]]]:
        """A server-sent event stream as ``(event, data)`` pairs (event is "message" when unnamed)."""
        try:
            with self.http.stream(method, path, timeout=httpx.Timeout(None, connect=10.0), **kwargs) as response:
                if response.is_error:
                    response.read()
                    check(response)
                yield parse_sse(response.iter_lines())
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None

    def _unreachable(self, exc: httpx.HTTPError) -> CliError:
        return CliError(f"cannot talk to the server at {self.config.server_url}: {exc or type(exc).__name__}", FAILED)


def check(response: httpx.Response) -> None:
    if not response.is_error:
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    raise CliError.from_response(response.status_code, body, response.text)


def parse_sse(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    event, data = "message", []
    for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield event, "\n".join(data)


def json_or_text(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data
