"""Fine-tuning jobs: a validation stage (preflight, on the io pool) then training (on the gpu pool)."""
from __future__ import annotations

from sqlalchemy import select

from contracts.configs import DpoHyperparameters, FinetuneHyperparameters
from contracts.model_refs import ModelNotFound
from models.crud.model_refs import resolve_training_start
from models.registry import Adapter, Checkpoint
from worker.handlers.preflight import load_training_examples, load_training_file
from worker.job_context import JobContext, JobFailed, NextStage
from worker.resources import artifact_store, resolve_base_model_dir


def adapter_name(base_model: str, suffix: str | None, job_id: str) -> str:
    return f"ft:{base_model}:{suffix or 'lorafleet'}:{job_id}"


def validate_files(ctx: JobContext, hp: FinetuneHyperparameters) -> dict:
    """The ``validating_files`` stage: every file parses, and some example fits in ``cutoff_len``."""
    from worker.ml.training.preflight import run_preflight

    examples = load_training_examples(ctx, ctx.params["training_file"], "training_file")
    if ctx.params.get("validation_file"):
        load_training_examples(ctx, ctx.params["validation_file"], "validation_file")
    with ctx.session() as s:
        model_dir = resolve_base_model_dir(s, ctx.settings, ctx.model)
    report = run_preflight(examples, model_dir, hp)
    if report.get("n_untrainable", 0) >= report["n_examples"] and report["n_over_cutoff"] < report["n_examples"]:
        raise JobFailed("invalid_training_file", f"none of the {report['n_examples']} examples has a response "
                        f"token left to learn from within cutoff_len={hp.cutoff_len}", "training_file")
    if report["n_over_cutoff"] >= report["n_examples"]:
        raise JobFailed("invalid_training_file", f"every one of the {report['n_examples']} examples is longer than "
                        f"cutoff_len={hp.cutoff_len} tokens; raise cutoff_len or shorten the examples",
                        "training_file")
    summary = {k: report.get(k) for k in ("n_examples", "total_tokens", "trainable_tokens", "n_over_cutoff",
                                          "estimated_steps", "n_train", "n_val", "time_estimate")}
    ctx.emit(f"Validated {report['n_examples']} examples ({report['n_over_cutoff']} longer than cutoff_len "
             f"will be truncated); about {report.get('estimated_steps')} optimizer steps", data=summary)
    return summary


def _record_checkpoint(ctx: JobContext, name: str, info: dict) -> None:
    """A checkpoint row, its folder stored relative to the artifact root (any host resolves it)."""
    step = int(info["step"])
    path = artifact_store(ctx.settings).relative(info["path"])
    with ctx.session() as s:
        row = s.execute(select(Checkpoint).where(Checkpoint.job_id == ctx.job_id,
                                                 Checkpoint.step_number == step)).scalar_one_or_none()
        if row is None:
            row = Checkpoint(job_id=ctx.job_id, owner_id=ctx.owner_id, step_number=step,
                             model_name=f"{name}:ckpt-step-{step}", path=path)
            s.add(row)
        row.path, row.metrics = path, {"step": step, **(info.get("metrics") or {})}
    ctx.emit(f"Checkpoint saved at step {step}", data={"step": step})


def job_hyperparameters(ctx: JobContext) -> FinetuneHyperparameters:
    """The job's hyperparameters (``DpoHyperparameters`` for a DPO job); when it continues from an adapter
    or checkpoint (``params.start_from``), ``init_adapter`` is that folder on this host."""
    dpo = ctx.params.get("method") == "dpo"
    hp = (DpoHyperparameters if dpo else FinetuneHyperparameters).model_validate(ctx.params["hyperparameters"])
    start = ctx.params.get("start_from")
    if not start:
        return hp
    try:
        with ctx.session() as s:
            ref = resolve_training_start(session=s, name=start, owner_id=ctx.owner_id,
                                         artifacts_dir=ctx.settings.artifacts_dir).ref
    except ModelNotFound:
        raise JobFailed("model_not_found", f"the adapter '{start}' to continue from no longer exists", "model") from None
    return hp.model_copy(update={"init_adapter": ref.adapter_path})


def run_fine_tuning_job(ctx: JobContext) -> dict | NextStage:
    """Validation stage: hand over to the gpu pool. Training stage: train, register the adapter."""
    from worker.handlers.preference_tuning import validate_preference_file

    hp = job_hyperparameters(ctx)
    if ctx.stage == "validating_files":
        dpo = isinstance(hp, DpoHyperparameters)
        return NextStage.after(ctx, result={"validation": validate_preference_file(ctx, hp) if dpo
                                            else validate_files(ctx, hp)})
    return train_adapter(ctx, hp)


def train_adapter(ctx: JobContext, hp: FinetuneHyperparameters) -> dict:
    """The ``running`` stage: train (resuming from this job's latest checkpoint) and register the adapter."""
    from worker.ml.training.finetune import train_lora
    from worker.ml.training.run_setup import RunSources

    name = adapter_name(ctx.model, ctx.params.get("suffix"), ctx.job_id)
    if isinstance(hp, DpoHyperparameters):
        from worker.handlers.preference_tuning import run_dpo

        _announce_resume(ctx)
        out = run_dpo(ctx, hp, name, lambda m: _report_step(ctx, m), lambda info: _record_checkpoint(ctx, name, info))
        return _finish(ctx, name, hp, out)
    train, train_file = load_training_file(ctx, ctx.params["training_file"], "training_file")
    val, files = None, [train_file]
    if ctx.params.get("validation_file"):
        val, val_file = load_training_file(ctx, ctx.params["validation_file"], "validation_file")
        files.append(val_file)
    with ctx.session() as s:
        model_dir = resolve_base_model_dir(s, ctx.settings, ctx.model)
    _announce_resume(ctx)
    ctx.emit(f"Training {name} on {len(train)} examples")
    out = train_lora(base_model_dir=model_dir, train_examples=train, val_examples=val, hp=hp, out_dir=ctx.work_dir,
                     device=ctx.settings.device, on_step=lambda m: _report_step(ctx, m),
                     on_checkpoint=lambda info: _record_checkpoint(ctx, name, info), should_stop=ctx.should_stop,
                     sources=RunSources(base_model_name=ctx.model, data_files=files))
    return _finish(ctx, name, hp, out)


def _finish(ctx: JobContext, name: str, hp: FinetuneHyperparameters, out: dict) -> dict:
    """A finished run registers its adapter and reports; a cancelled one returns where it stopped."""
    if out.get("status") != "succeeded":
        return {"status": out.get("status", "cancelled"), "steps": out.get("steps")}
    _register_adapter(ctx, name, hp, out)
    ctx.report_progress(step=out.get("steps", 1), total=out.get("steps", 1), tokens=out.get("trained_tokens"),
                        force=True)
    return {"fine_tuned_model": name, "trained_tokens": out.get("trained_tokens"), "steps": out.get("steps"),
            "metrics": {k: v for k, v in out.items() if k not in ("adapter_dir",)}, "result_files": []}


def _report_step(ctx: JobContext, m: dict) -> None:
    ctx.report_progress(step=m["step"], total=m["total_steps"], tokens=m.get("tokens"),
                        tokens_per_s=m.get("tokens_per_s"))
    text = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in m.items()
                     if k in ("step", "train_loss", "valid_loss", "learning_rate", "rewards_chosen",
                              "rewards_rejected", "reward_margin", "reward_accuracy"))
    ctx.emit(f"Step {m['step']}/{m['total_steps']}: {text}", type="metrics", data=m)


def _announce_resume(ctx: JobContext) -> None:
    """A retried attempt says which checkpoint it continues from (train_lora does the resuming)."""
    from worker.ml.training.checkpoints import latest_checkpoint, read_checkpoint_meta

    latest = latest_checkpoint(ctx.work_dir)
    if latest is not None:
        step = read_checkpoint_meta(latest).get("step")
        ctx.emit(f"Resumed from step {step} (checkpoint {latest.name})",
                 data={"resumed_from_step": step})


def _register_adapter(ctx: JobContext, name: str, hp: FinetuneHyperparameters, out: dict) -> None:
    """The adapter row, its folder stored relative to the artifact root (any host resolves it)."""
    with ctx.session() as s:
        row = s.execute(select(Adapter).where(Adapter.name == name)).scalar_one_or_none() or Adapter(
            owner_id=ctx.owner_id, name=name, base_model=ctx.model, job_id=ctx.job_id, path="")
        row.path, row.config = artifact_store(ctx.settings).relative(out["adapter_dir"]), hp.model_dump(mode="json")
        row.metrics = {k: v for k, v in out.items() if isinstance(v, (int, float, str)) and k != "adapter_dir"}
        s.add(row)
