"""Stages as data: every kind has them, a job starts in its first, hand-offs follow the declared order."""
from __future__ import annotations

from contracts.job_stages import STAGES, first_stage, next_stage
from models.job import JobKind


def test_every_job_kind_declares_its_stages():
    assert set(STAGES) == {k.value for k in JobKind}
    for stages in STAGES.values():
        assert stages and all(s.queue in ("io", "gpu") and s.done for s in stages)
        assert stages[-1].name == "running"


def test_fine_tuning_validates_on_io_then_trains_on_gpu():
    validate = first_stage("fine_tuning")
    assert (validate.name, validate.queue, validate.waiting_status) == ("validating_files", "io", "validating_files")
    train = next_stage("fine_tuning", "validating_files")
    assert (train.name, train.queue, train.waiting_status) == ("running", "gpu", "queued")
    assert next_stage("fine_tuning", "running") is None
