"""``/v1/datasets``: what generation jobs produced -- stats, and the kept and rejected rows with provenance.

Rows live in the artifact store as JSONL (``rows.jsonl``: kept, ``rejected.jsonl``: dropped candidates
with the filter that dropped them). A row's ``index`` is its 0-based position in its file, stable
forever (a dataset never changes), and is the paging cursor: ``after=<index>``.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Query

from api.deps import CurrentUser, SessionDep, StoreDep
from api.errors import APIError, error_responses, not_found
from api.schemas.common import ListRead, to_unix
from api.schemas.datasets import DatasetRead, DatasetRowRead, DatasetRowsRead
from models.crud import datasets as dataset_crud
from models.file import Dataset

router = APIRouter(prefix="/datasets", tags=["datasets"])


def dataset_view(ds: Dataset) -> DatasetRead:
    stats = ds.stats or {}
    return DatasetRead(id=ds.id, name=ds.name, created_at=to_unix(ds.created_at), job_id=ds.job_id,
                       file_id=ds.file_id, training_file=ds.file_id, n_rows=ds.n_rows, n_rejected=ds.n_rejected,
                       rejected_by_filter=stats.get("rejected_by_filter", {}), tokens=stats.get("tokens", {}),
                       cost_usd=stats.get("cost_usd", 0.0), stats=stats)


def _get(session, user, dataset_id: str) -> Dataset:
    ds = dataset_crud.get_owned_dataset(session=session, dataset_id=dataset_id, owner_id=user.id)
    if ds is None:
        raise not_found("dataset", dataset_id, "dataset_id")
    return ds


def iter_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(index, row) for each line of a JSONL row file, streamed."""
    with open(path, encoding="utf-8") as f:
        index = 0
        for line in f:
            if line.strip():
                yield index, json.loads(line)
                index += 1


def page_rows(rows: Iterator[tuple[int, dict]], verdict: str, filter_name: str | None, after: int | None,
              limit: int) -> DatasetRowsRead:
    data: list[DatasetRowRead] = []
    for index, row in rows:
        if after is not None and index <= after:
            continue
        if filter_name is not None and row.get("filter") != filter_name:
            continue
        if len(data) == limit:
            return DatasetRowsRead(data=data, has_more=True, next_after=data[-1].index)
        data.append(DatasetRowRead.model_validate({**row, "index": index, "verdict": verdict}))
    return DatasetRowsRead(data=data)


@router.get("", response_model=ListRead[DatasetRead])
def list_datasets(session: SessionDep, user: CurrentUser,
                  after: str | None = Query(None, description="a dataset id: list the datasets older than it "
                                            "(the `last_id` of the previous page)"),
                  limit: int = Query(20, ge=1, le=100)) -> ListRead[DatasetRead]:
    rows = dataset_crud.list_datasets(session=session, owner_id=user.id, after=after, limit=limit + 1)
    data = [dataset_view(d) for d in rows[:limit]]
    return ListRead(data=data, has_more=len(rows) > limit, first_id=data[0].id if data else None,
                    last_id=data[-1].id if data else None)


@router.get("/{dataset_id}", response_model=DatasetRead)
def retrieve_dataset(dataset_id: str, session: SessionDep, user: CurrentUser) -> DatasetRead:
    return dataset_view(_get(session, user, dataset_id))


@router.get("/{dataset_id}/rows", response_model=DatasetRowsRead, responses=error_responses(410))
def list_dataset_rows(dataset_id: str, session: SessionDep, user: CurrentUser, store: StoreDep,
                      verdict: Literal["kept", "rejected"] | None = None,
                      filter: str | None = Query(None, min_length=1, description="rejected rows of one filter"),
                      after: int | None = Query(None, ge=0, description="the `index` of the last row already seen "
                                                "(the previous page's `next_after`)"),
                      limit: int = Query(20, ge=1, le=1000)) -> DatasetRowsRead:
    ds = _get(session, user, dataset_id)
    if filter is not None and verdict == "kept":
        raise APIError(400, "invalid_value", "'filter' selects rejected rows; use verdict=rejected", "filter")
    verdict = verdict or ("rejected" if filter is not None else "kept")
    rel = ds.rows_path if verdict == "kept" else ds.rejected_path
    if rel is None:
        return DatasetRowsRead(data=[])
    path = store.path(rel)
    if not path.exists():
        raise APIError(410, "rows_missing", f"the {verdict} rows of dataset {ds.id} are no longer stored", "dataset_id")
    return page_rows(iter_rows(path), verdict, filter, after, limit)
