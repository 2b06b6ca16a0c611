"""DPO fine-tuning jobs (``method.type: "dpo"``): the validating stage parses the preference file and
checks some pair fits ``cutoff_len``; the running stage trains with ``train_dpo``. The job's other
parts (checkpoint rows, the adapter row, progress) are the supervised handler's."""
from __future__ import annotations

from contracts.configs import DpoHyperparameters
from contracts.preference_records import PreferencePair, parse_preference_file
from contracts.run_config import DataFileRecord, bytes_sha256
from worker.handlers.job_files import raise_parse_errors, read_owned_file
from worker.job_context import JobContext, JobFailed
from worker.resources import resolve_base_model_dir


def load_preference_file(ctx: JobContext, file_id: str, param: str) -> tuple[list[PreferencePair], DataFileRecord]:
    """The pairs of an uploaded file of the job's owner (failures name ``param``) and what was read."""
    data = read_owned_file(ctx, file_id, param)
    parsed = parse_preference_file(data, ctx.settings.max_line_bytes)
    raise_parse_errors(parsed, param)
    role = "validation" if param == "validation_file" else "training"
    return parsed.records, DataFileRecord(role=role, file_id=file_id, sha256=bytes_sha256(data), size_bytes=len(data))


def validate_preference_file(ctx: JobContext, hp: DpoHyperparameters) -> dict:
    """The ``validating_files`` stage of a DPO job: the pairs parse and some pair keeps a response token of
    both answers within ``cutoff_len``."""
    from worker.ml.training.data import load_tokenizer, plan_steps
    from worker.ml.training.preference.data import tokenize_pairs

    pairs, _ = load_preference_file(ctx, ctx.params["training_file"], "training_file")
    if ctx.params.get("validation_file"):
        load_preference_file(ctx, ctx.params["validation_file"], "validation_file")
    with ctx.session() as s:
        model_dir = resolve_base_model_dir(s, ctx.settings, ctx.model)
    usable = tokenize_pairs(pairs, load_tokenizer(model_dir), hp)
    if not usable:
        raise JobFailed("invalid_training_file", f"none of the {len(pairs)} pairs keeps a response token of both "
                        f"answers within cutoff_len={hp.cutoff_len}", "training_file")
    plan = plan_steps(len(usable), hp.batch_size, hp.micro_batch_size, hp.num_epochs)
    summary = {"n_pairs": len(pairs), "n_train": len(usable), "n_dropped": len(pairs) - len(usable),
               "total_tokens": sum(p.n_tokens for p in usable), "estimated_steps": plan.total_steps}
    ctx.emit(f"Validated {len(pairs)} preference pairs ({summary['n_dropped']} without a response token within "
             f"cutoff_len are left out); {plan.total_steps} optimizer steps", data=summary)
    return summary


def run_dpo(ctx: JobContext, hp: DpoHyperparameters, name: str, on_step, on_checkpoint) -> dict:
    """Train the job's adapter with DPO (resuming from this job's latest checkpoint); the run's result."""
    from worker.ml.training.preference.loop import train_dpo
    from worker.ml.training.run_setup import RunSources

    pairs, record = load_preference_file(ctx, ctx.params["training_file"], "training_file")
    val_pairs, records = None, [record]
    if ctx.params.get("validation_file"):
        val_pairs, val_record = load_preference_file(ctx, ctx.params["validation_file"], "validation_file")
        records.append(val_record)
    with ctx.session() as s:
        model_dir = resolve_base_model_dir(s, ctx.settings, ctx.model)
    reference = "the starting adapter" if hp.init_adapter else "the base model (adapter off)"
    ctx.emit(f"Training {name} with DPO (beta={hp.beta}) on {len(pairs)} pairs; reference policy: {reference}")
    return train_dpo(base_model_dir=model_dir, pairs=pairs, hp=hp, out_dir=ctx.work_dir, device=ctx.settings.device,
                     on_step=on_step, on_checkpoint=on_checkpoint, should_stop=ctx.should_stop,
                     sources=RunSources(base_model_name=ctx.model, data_files=records), val_pairs=val_pairs)
