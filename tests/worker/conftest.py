"""Jobs as the dispatcher leaves them for a worker: created, then admitted to a worker id."""
from __future__ import annotations

import secrets
from collections.abc import Callable

import pytest

from models.base import utcnow
from models.crud import jobs as job_crud
from models.crud.users import create_user
from models.db import session_scope
from models.job import Job, JobKind

TEST_WORKER = "w-test"


def admit(factory, job_id: str, worker_id: str = TEST_WORKER) -> None:
    """What a dispatcher pass does for a job it placed on ``worker_id``."""
    with session_scope(factory) as s:
        job = s.get(Job, job_id)
        job.admitted_at, job.worker_id = utcnow(), worker_id


@pytest.fixture
def admitted_job(db_session_factory) -> Callable[..., str]:
    def _make(kind: JobKind = JobKind.preflight, params: dict | None = None, worker_id: str = TEST_WORKER) -> str:
        with session_scope(db_session_factory) as s:
            user, _ = create_user(session=s, name=f"r-{secrets.token_hex(4)}")
            job_id = job_crud.create_job(session=s, owner_id=user.id, kind=kind, params=params or {}).id
        admit(db_session_factory, job_id, worker_id)
        return job_id

    return _make
