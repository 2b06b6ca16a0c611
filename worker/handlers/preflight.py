"""Preflight: tokenise a training file with the base model's tokenizer and report what training would see."""
from __future__ import annotations

from contracts.configs import FinetuneHyperparameters
from contracts.records import Example, parse_training_file
from contracts.run_config import DataFileRecord, bytes_sha256
from worker.handlers.job_files import raise_parse_errors, read_owned_file
from worker.job_context import JobContext
from worker.resources import resolve_base_model_dir


def load_training_file(ctx: JobContext, file_id: str, param: str) -> tuple[list[Example], DataFileRecord]:
    """Read and parse an uploaded file of the job's owner; failures name the parameter. Also returns
    what was read (file id, sha256 of the bytes) for the run's ``config.json``."""
    data = read_owned_file(ctx, file_id, param)
    parsed = parse_training_file(data, ctx.settings.max_line_bytes)
    raise_parse_errors(parsed, param)
    role = "validation" if param == "validation_file" else "training"
    return parsed.records, DataFileRecord(role=role, file_id=file_id, sha256=bytes_sha256(data), size_bytes=len(data))


def load_training_examples(ctx: JobContext, file_id: str, param: str) -> list[Example]:
    """The parsed examples of an uploaded file of the job's owner (see ``load_training_file``)."""
    return load_training_file(ctx, file_id, param)[0]


def run_preflight_job(ctx: JobContext) -> dict:
    from worker.ml.training.preflight import run_preflight

    hp = FinetuneHyperparameters.model_validate(ctx.params.get("hyperparameters", {}))
    examples = load_training_examples(ctx, ctx.params["training_file"], "training_file")
    ctx.emit(f"Loaded {len(examples)} examples; loading the {ctx.model} tokenizer")
    with ctx.session() as s:
        model_dir = resolve_base_model_dir(s, ctx.settings, ctx.model)
    report = run_preflight(examples, model_dir, hp)
    ctx.report_progress(step=1, total=1, tokens=report.get("total_tokens"), force=True)
    ctx.emit(f"Preflight: {report.get('n_examples')} examples, {report.get('total_tokens')} tokens, "
             f"{report.get('n_over_cutoff')} over cutoff_len", type="metrics", data={
                 k: report.get(k) for k in ("n_examples", "total_tokens", "trainable_tokens", "n_over_cutoff",
                                            "estimated_steps")})
    return report
