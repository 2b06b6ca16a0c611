"""Base models and trained adapters (with their checkpoints)."""
from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONType, TimestampMixin, id_column


class BaseModelEntry(TimestampMixin, Base):
    """A named base model: built in, a local HF checkpoint dir, or a GGUF file."""

    __tablename__ = "base_models"

    id: Mapped[str] = id_column("bm-")
    name: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    # "builtin:<name>", or an absolute path to an HF dir / .gguf file.
    source: Mapped[str] = mapped_column(String(1024), nullable=False)
    description: Mapped[str] = mapped_column(String(512), default="", nullable=False)
    # Its shape from config.json (contracts.memory_estimate.ModelShape fields), for memory estimates.
    shape: Mapped[dict] = mapped_column(JSONType, default=dict, nullable=False)


class Adapter(TimestampMixin, Base):
    """A LoRA adapter produced by a fine-tuning job (a PEFT folder in the artifact store)."""

    __tablename__ = "adapters"

    id: Mapped[str] = id_column("adapter-")
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False)
    # The OpenAI-style model id: ft:<base>:<suffix>:<job id>
    name: Mapped[str] = mapped_column(String(256), unique=True, nullable=False)
    base_model: Mapped[str] = mapped_column(String(128), nullable=False)
    job_id: Mapped[str | None] = mapped_column(String(64), index=True)
    path: Mapped[str] = mapped_column(String(1024), nullable=False)
    config: Mapped[dict] = mapped_column(JSONType, default=dict, nullable=False)
    metrics: Mapped[dict] = mapped_column(JSONType, default=dict, nullable=False)


class Checkpoint(TimestampMixin, Base):
    """An intermediate adapter of a fine-tuning job; usable as a model id (``<adapter>:ckpt-step-N``)."""

    __tablename__ = "checkpoints"

    id: Mapped[str] = id_column("ftckpt-")
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True, nullable=False)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False)
    step_number: Mapped[int] = mapped_column(Integer, nullable=False)
    model_name: Mapped[str] = mapped_column(String(300), nullable=False)
    path: Mapped[str] = mapped_column(String(1024), nullable=False)
    metrics: Mapped[dict] = mapped_column(JSONType, default=dict, nullable=False)
