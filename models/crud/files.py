"""Files: the owned-file lookup every reader of a user's file goes through (API routes and job handlers)."""
from __future__ import annotations

from sqlalchemy.orm import Session

from models.file import File


def get_owned_file(*, session: Session, file_id: str, owner_id: str) -> File | None:
    """The file ``file_id`` if it exists and belongs to ``owner_id``; None otherwise (no existence leak)."""
    f = session.get(File, file_id)
    return f if f is not None and f.owner_id == owner_id else None
