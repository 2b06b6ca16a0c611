"""Hand-off from the API to the dispatcher: the job row is committed first, then the dispatcher is woken."""
from __future__ import annotations

from fastapi import Request


def notify_submitted(request: Request) -> None:
    loop = getattr(request.app.state, "dispatcher", None)
    if loop is not None:
        loop.wakeup.set()
