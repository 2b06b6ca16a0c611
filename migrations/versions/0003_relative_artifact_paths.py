"""relative artifact paths: adapter and checkpoint folders stored relative to the artifact root

Hosts of one deployment may mount the shared store at different paths, so rows hold paths relative
to the store's root and each host resolves them against its own mount. Existing absolute paths are
converted when they lie under the artifact root of the environment running the migration
(``LORAFLEET_ARTIFACT_URI`` / ``LORAFLEET_DATA_DIR``), or, wherever the store was mounted, when they
hold the job's own folder ``.../jobs/<job id>/...`` (every adapter and checkpoint is written there).
Anything else stays absolute (still readable where it exists). No schema change.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 04:50:00
"""
from __future__ import annotations

from pathlib import PurePosixPath

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

TABLES = ("adapters", "checkpoints")


def _artifact_roots() -> list[PurePosixPath]:
    from models.settings import Settings

    root = Settings().artifacts_dir
    return list(dict.fromkeys([PurePosixPath(root), PurePosixPath(root.resolve())]))


def relative_path(path: str, job_id: str | None, roots: list[PurePosixPath]) -> str | None:
    """The stored form of an absolute ``path``, or None to leave it as it is."""
    p = PurePosixPath(path)
    for root in roots:
        if p.is_relative_to(root) and p != root:
            return p.relative_to(root).as_posix()
    if job_id and f"/jobs/{job_id}/" in path:
        return f"jobs/{job_id}/" + path.split(f"/jobs/{job_id}/", 1)[1]
    return None


def _rows(table: str) -> tuple[sa.Table, list]:
    t = sa.table(table, sa.column("id", sa.String), sa.column("job_id", sa.String), sa.column("path", sa.String))
    return t, op.get_bind().execute(sa.select(t.c.id, t.c.job_id, t.c.path)).all()


def upgrade() -> None:
    roots = _artifact_roots()
    for table in TABLES:
        t, rows = _rows(table)
        for row_id, job_id, path in rows:
            rel = relative_path(path, job_id, roots) if path.startswith("/") else None
            if rel:
                op.get_bind().execute(t.update().where(t.c.id == row_id).values(path=rel))


def downgrade() -> None:
    root = _artifact_roots()[0]
    for table in TABLES:
        t, rows = _rows(table)
        for row_id, _, path in rows:
            if path and not path.startswith("/"):
                op.get_bind().execute(t.update().where(t.c.id == row_id).values(path=str(root / path)))
