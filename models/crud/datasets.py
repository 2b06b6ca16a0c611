"""Datasets (generation outputs): owned look-ups and paging (what they cost is in ``models.crud.usage``)."""
from __future__ import annotations

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from models.file import Dataset


def get_owned_dataset(*, session: Session, dataset_id: str, owner_id: str) -> Dataset | None:
    ds = session.get(Dataset, dataset_id)
    return ds if ds is not None and ds.owner_id == owner_id else None


def get_dataset_of_job(*, session: Session, job_id: str) -> Dataset | None:
    return session.execute(select(Dataset).where(Dataset.job_id == job_id)).scalars().first()


def list_datasets(*, session: Session, owner_id: str, after: str | None, limit: int) -> list[Dataset]:
    """Newest first; ``after`` is the id of the last dataset of the previous page."""
    q = select(Dataset).where(Dataset.owner_id == owner_id)
    if after:
        anchor = get_owned_dataset(session=session, dataset_id=after, owner_id=owner_id)
        if anchor is not None:
            q = q.where(or_(Dataset.created_at < anchor.created_at,
                            and_(Dataset.created_at == anchor.created_at, Dataset.id < anchor.id)))
    return list(session.execute(q.order_by(Dataset.created_at.desc(), Dataset.id.desc()).limit(limit)).scalars())

