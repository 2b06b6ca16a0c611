"""Export jobs: merge an adapter into its base model's weights (full HF checkpoint + tokenizer)."""
from __future__ import annotations

from models.registry import Adapter
from worker.job_context import JobContext, JobFailed
from worker.resources import artifact_store, resolve_base_model_dir


def run_export_job(ctx: JobContext) -> dict:
    from worker.ml.training.lora import merge_adapter

    store = artifact_store(ctx.settings)

    with ctx.session() as s:
        a = s.get(Adapter, ctx.params["adapter_id"])
        if a is None or a.owner_id != ctx.owner_id:
            raise JobFailed("adapter_not_found", f"adapter {ctx.params['adapter_id']} no longer exists", "adapter_id")
        adapter_path, base = store.resolve(a.path), a.base_model
        model_dir = resolve_base_model_dir(s, ctx.settings, base)
    out = merge_adapter(model_dir, adapter_path, ctx.work_dir / "merged")
    ctx.emit(f"Merged adapter into {base}: {out}")
    return {"merged_model_dir": store.relative(out), "base_model": base}
