"""What a client command prints: rich tables and lines for a person, one JSON document with ``--json``."""
from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from lorafleet_cli.client.errors import CliError

# A column: (heading, how to get the cell from a row: a key, or a function of the row)
Column = tuple[str, str | Callable[[dict], Any]]


def when(ts: Any) -> str:
    """A unix time as local ISO minutes; '' for none."""
    if not isinstance(ts, int | float) or not ts:
        return ""
    return datetime.fromtimestamp(ts, UTC).astimezone().strftime("%Y-%m-%d %H:%M")


def cell(row: dict, getter: str | Callable[[dict], Any]) -> str:
    value = getter(row) if callable(getter) else row.get(getter)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


class Output:
    def __init__(self, as_json: bool):
        self.as_json = as_json
        self.console = Console(soft_wrap=True)
        self.errors = Console(stderr=True, soft_wrap=True, highlight=False)

    def json(self, data: Any) -> None:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        sys.stdout.flush()

    def table(self, rows: Sequence[dict], columns: Sequence[Column], *, raw: Any = None, title: str | None = None) -> None:
        """``raw`` (default: ``rows``) as JSON, or a table of ``rows``."""
        if self.as_json:
            self.json(raw if raw is not None else list(rows))
            return
        table = Table(title=title, show_lines=False, header_style="bold")
        for heading, _ in columns:
            table.add_column(heading, overflow="fold")
        for row in rows:
            table.add_row(*(cell(row, getter) for _, getter in columns))
        self.console.print(table)
        if not rows:
            self.console.print("(none)")

    def record(self, data: dict, fields: Sequence[Column] | None = None, *, title: str | None = None) -> None:
        """One object: JSON, or a two-column table of its fields (all of them by default)."""
        if self.as_json:
            self.json(data)
            return
        table = Table(title=title, show_header=False, box=None, pad_edge=False)
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for heading, getter in fields or [(k, k) for k in data]:
            table.add_row(heading, cell(data, getter))
        self.console.print(table)

    def say(self, text: str, data: Any = None) -> None:
        """A line for a person; with ``--json``, ``data`` (if given) instead."""
        if self.as_json:
            if data is not None:
                self.json(data)
            return
        self.console.print(text, highlight=False)

    def note(self, text: str) -> None:
        """A remark on stderr (never mixed into ``--json`` output)."""
        self.errors.print(text, highlight=False)

    def error(self, error: CliError) -> None:
        if self.as_json and not error.reported:
            self.json(error.as_dict())
        for line in error.render_lines():
            self.errors.print(line, style="red" if line.startswith("error") else None, markup=False)
