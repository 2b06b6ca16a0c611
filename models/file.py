"""Uploaded and produced files (OpenAI's File object) and datasets built from them."""
from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONType, TimestampMixin, id_column


class File(TimestampMixin, Base):
    __tablename__ = "files"

    id: Mapped[str] = id_column("file-")
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False)
    filename: Mapped[str] = mapped_column(String(512), nullable=False)
    purpose: Mapped[str] = mapped_column(String(32), nullable=False)
    bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # Path relative to the artifact store root.
    storage_path: Mapped[str] = mapped_column(String(1024), nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    # Validation summary: format, n_records.
    info: Mapped[dict] = mapped_column(JSONType, default=dict, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="processed", nullable=False)


class Dataset(TimestampMixin, Base):
    """Instruction data produced by a generation job (or registered from a file)."""

    __tablename__ = "datasets"

    id: Mapped[str] = id_column("ds-")
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False)
    name: Mapped[str] = mapped_column(String(256), nullable=False)
    # The training-ready file (Alpaca JSONL) that fine-tuning jobs take.
    file_id: Mapped[str | None] = mapped_column(ForeignKey("files.id", ondelete="SET NULL"))
    job_id: Mapped[str | None] = mapped_column(String(64), index=True)
    n_rows: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    n_rejected: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    # Paths (relative to the artifact root) of rows.jsonl / rejected.jsonl with provenance.
    rows_path: Mapped[str | None] = mapped_column(String(1024))
    rejected_path: Mapped[str | None] = mapped_column(String(1024))
    stats: Mapped[dict] = mapped_column(JSONType, default=dict, nullable=False)
