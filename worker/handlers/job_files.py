"""Register a file a job produced (batch output, eval report) as an OpenAI File owned by the job's owner."""
from __future__ import annotations

from pathlib import Path

from contracts.records import ParseResult
from models.crud.files import get_owned_file
from models.file import File
from worker.job_context import JobContext, JobFailed
from worker.resources import artifact_store


def register_job_file(ctx: JobContext, src: Path, *, role: str, filename: str, purpose: str) -> str:
    """Copy ``src`` to ``files/<owner>/<file id>`` and upsert its File row; returns the file id.

    The id is derived from the job and ``role``, so a job re-run after a crash replaces its file
    instead of leaving a second one behind."""
    file_id = f"file-{ctx.job_id}-{role}"
    rel = f"files/{ctx.owner_id}/{file_id}"
    with open(src, "rb") as stream:
        size, sha = artifact_store(ctx.settings).write_stream(rel, stream, max_bytes=1 << 62)
    with ctx.session() as s:
        row = s.get(File, file_id) or File(id=file_id, owner_id=ctx.owner_id, storage_path=rel, filename="",
                                           purpose=purpose, bytes=0, sha256="")
        row.filename, row.purpose, row.bytes, row.sha256, row.storage_path = filename, purpose, size, sha, rel
        row.info = {"job_id": ctx.job_id}
        s.add(row)
    return file_id


def read_owned_file(ctx: JobContext, file_id: str, param: str) -> bytes:
    """The bytes of an uploaded file of the job's owner (it may have been deleted since submit)."""
    with ctx.session() as s:
        f = get_owned_file(session=s, file_id=file_id, owner_id=ctx.owner_id)
        if f is None:
            raise JobFailed("file_not_found", f"file {file_id} does not exist", param)
        path = artifact_store(ctx.settings).path(f.storage_path)
    return path.read_bytes()


def raise_parse_errors(parsed: ParseResult, param: str) -> None:
    """Fail the job on a data file that does not parse (it may have changed since upload), naming its first
    bad line and the job parameter that named the file."""
    if parsed.errors:
        first = parsed.errors[0]
        raise JobFailed("invalid_file", f"line {first.line}: {first.message}", param)
