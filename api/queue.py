"""Hand-off from the API to the dispatcher: the job row is committed first, then the dispatchers are woken."""
from __future__ import annotations

from fastapi import Request

from models.event_bus import wake_dispatcher


def notify_submitted(request: Request) -> None:
    wake_dispatcher(request.app.state.settings)
