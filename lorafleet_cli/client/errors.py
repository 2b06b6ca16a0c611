"""What a client command's failure means (its exit code) and how it is shown: the server's error body
(``message``, ``param``, every bad ``line`` and invalid field), never a traceback."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Exit codes every client command keeps to.
OK, JOB_FAILED, BAD_INPUT, AUTH, NOT_FOUND = 0, 1, 2, 3, 4
FAILED = JOB_FAILED  # the operation failed for another reason (server error, server unreachable)


def exit_code_for_status(status: int) -> int:
    """The exit code of an HTTP error status: 401/403 auth, 404 not found, other 4xx bad input, 5xx failed."""
    if status in (401, 403):
        return AUTH
    if status == 404:
        return NOT_FOUND
    return BAD_INPUT if 400 <= status < 500 else FAILED


@dataclass
class CliError(Exception):
    """A failure to report and exit with: ``message`` plus the server's ``param``, ``lines`` and ``details``."""

    message: str
    exit_code: int = FAILED
    param: str | None = None
    code: str | None = None
    status: int | None = None
    lines: list[dict[str, Any]] = field(default_factory=list)
    details: list[dict[str, Any]] = field(default_factory=list)
    reported: bool = False  # the command already printed its --json answer (e.g. the failed job)

    def __str__(self) -> str:
        return self.message

    @classmethod
    def from_response(cls, status: int, body: Any, fallback: str) -> CliError:
        """From an error answer: the API's ``{"error": {...}}`` body, or whatever text came back."""
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            return cls(f"HTTP {status}: {fallback[:500] or 'no body'}", exit_code_for_status(status), status=status)
        return cls(str(error.get("message") or f"HTTP {status}"), exit_code_for_status(status),
                   param=error.get("param"), code=error.get("code"), status=status,
                   lines=[line for line in error.get("lines") or [] if isinstance(line, dict)],
                   details=[d for d in error.get("details") or [] if isinstance(d, dict)])

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` form: ``{"error": {...}, "exit_code": N}``."""
        error = {"message": self.message, "param": self.param, "code": self.code, "status": self.status}
        if self.lines:
            error["lines"] = self.lines
        if self.details:
            error["details"] = self.details
        return {"error": error, "exit_code": self.exit_code}

    def render_lines(self) -> list[str]:
        """The human form, one string a line: the message, the parameter, each bad line and field."""
        out = [f"error: {self.message}"]
        if self.param:
            out.append(f"  param: {self.param}")
        if self.code:
            out.append(f"  code: {self.code}")
        for line in self.lines:
            where = f"line {line.get('line')}" if line.get("line") else "file"
            param = f" [{line['param']}]" if line.get("param") else ""
            out.append(f"  {where}{param}: {line.get('message')}")
        for detail in self.details[1:] if len(self.details) > 1 else []:
            out.append(f"  {detail.get('param') or 'body'}: {detail.get('message')}")
        return out
