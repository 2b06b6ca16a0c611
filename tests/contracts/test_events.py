"""The public event and progress shapes."""
from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from contracts.events import JobEvent, Progress


def test_event_from_row_is_the_public_shape():
    row = SimpleNamespace(id=7, created_at=datetime(2026, 1, 1, tzinfo=UTC), level="info", type="message",
                          message="hi", data=None, job_id="ftjob-1")
    assert JobEvent.from_row(row).model_dump() == {
        "object": "fine_tuning.job.event", "id": "ev-7", "created_at": 1767225600, "level": "info",
        "type": "message", "message": "hi", "data": {}, "job_id": "ftjob-1"}


def test_progress_percent_eta_and_extras():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    p = Progress.measure(step=1, total=4, elapsed_s=10.0, tokens=5, now=now, phase="training").model_dump()
    assert p == {"step": 1, "total_steps": 4, "percent": 25.0, "tokens": 5, "tokens_per_s": None,
                 "estimated_finish": "2026-01-01T00:00:30+00:00", "phase": "training"}
    assert Progress.measure(step=0, total=0, elapsed_s=1.0).percent is None
