"""lorafleet job statuses -> OpenAI batch statuses."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api.routes.batches import batch_status
from models.job import Job

NOW = datetime.now(UTC)


@pytest.mark.parametrize("status,started,cancel,phase,want", [
    ("queued", None, False, None, "validating"),
    ("queued", None, True, None, "cancelling"),
    ("running", NOW, False, None, "in_progress"),
    ("running", NOW, False, "finalizing", "finalizing"),
    ("running", NOW, True, None, "cancelling"),
    ("queued", NOW, False, None, "in_progress"),  # re-queued after its worker died: still in progress
    ("succeeded", NOW, False, "finalizing", "completed"),
    ("failed", NOW, False, None, "failed"),
    ("cancelled", None, True, None, "cancelled"),
])
def test_batch_status(status, started, cancel, phase, want):
    job = Job(status=status, started_at=started, cancel_requested=cancel, progress={"phase": phase} if phase else {})
    assert batch_status(job) == want
