"""Turn a finished generation run into what users consume: a training File and a Dataset row.

Idempotent per job: a re-delivered job whose dataset was already published gets the same one back.
Every artifact is written to a temporary name and renamed into place (``ArtifactStore``), and the
database rows are committed only after the files exist.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

from contracts.configs import GenerationJobConfig
from contracts.records import parse_training_file
from models.base import new_id
from models.crud.datasets import get_dataset_of_job
from models.file import Dataset, File
from worker.job_context import JobContext, JobFailed
from worker.resources import artifact_store

ROWS_MAX_BYTES = 1 << 40  # the store's size guard is for uploads; generated files are ours


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def training_file_bytes(rows: list[dict], max_line_bytes: int) -> tuple[bytes, int]:
    """Kept rows as Alpaca JSONL (instruction/input/output only), minus any line the fine-tuning
    validator would refuse; returns (content, number of rows left out)."""
    lines = [json.dumps({"instruction": r["instruction"], "input": r.get("input", ""), "output": r["output"]},
                        ensure_ascii=False).encode() + b"\n" for r in rows]
    bad = {e.line for e in parse_training_file(b"".join(lines), max_line_bytes).errors}
    kept = [line for n, line in enumerate(lines, start=1) if n not in bad]
    return b"".join(kept), len(lines) - len(kept)


def dataset_summary(ds: Dataset) -> dict:
    return {"dataset_id": ds.id, "training_file": ds.file_id, "n_rows": ds.n_rows, "n_rejected": ds.n_rejected}


def publish_dataset(ctx: JobContext, cfg: GenerationJobConfig, out: dict) -> dict:
    """Write the training file and the dataset's row files, then record File + Dataset for the owner."""
    with ctx.session() as s:
        existing = get_dataset_of_job(session=s, job_id=ctx.job_id)
        if existing is not None:
            return dataset_summary(existing)
    store = artifact_store(ctx.settings)
    rows = _read_jsonl(Path(out["dataset_path"]))
    rejected = _read_jsonl(Path(out["rejected_path"]))
    content, n_untrainable = training_file_bytes(rows, ctx.settings.max_line_bytes)
    if not content:
        raise JobFailed("empty_dataset", f"none of the {len(rows)} generated rows passed the filters and the "
                        f"training-file checks ({len(rejected)} were rejected); see the job's events", "teacher")
    file_id, ds_id = new_id("file-"), new_id("ds-")
    file_rel = f"files/{ctx.owner_id}/{file_id}"
    rows_rel = f"datasets/{ctx.owner_id}/{ds_id}/rows.jsonl"
    rejected_rel = f"datasets/{ctx.owner_id}/{ds_id}/rejected.jsonl"
    store.write_bytes(file_rel, content)
    for src, rel in ((out["dataset_path"], rows_rel), (out["rejected_path"], rejected_rel)):
        with open(src, "rb") as f:
            store.write_stream(rel, f, ROWS_MAX_BYTES)
    stats = {
        "method": cfg.method, "teacher_model": cfg.teacher.model, "target_instructions": cfg.num_instructions,
        "n_instructions": out["n_instructions"], "rounds": out["rounds"], "tokens": out["tokens"],
        "cost_usd": out["cost_usd"], "rejected_by_filter": dict(Counter(r.get("filter") for r in rejected)),
        "n_training_rows": len(rows) - n_untrainable, "n_untrainable_rows": n_untrainable,
    }
    with ctx.session() as s:
        s.add(File(id=file_id, owner_id=ctx.owner_id, filename=f"{ctx.job_id}.jsonl", purpose="fine-tune",
                   bytes=len(content), storage_path=file_rel, sha256=hashlib.sha256(content).hexdigest(),
                   info={"format": "alpaca", "n_records": stats["n_training_rows"]}))
        s.flush()
        ds = Dataset(id=ds_id, owner_id=ctx.owner_id, name=f"{cfg.method}:{cfg.teacher.model}:{ctx.job_id}",
                     file_id=file_id, job_id=ctx.job_id, n_rows=len(rows), n_rejected=len(rejected),
                     rows_path=rows_rel, rejected_path=rejected_rel, stats=stats)
        s.add(ds)
        s.flush()
        return dataset_summary(ds)
