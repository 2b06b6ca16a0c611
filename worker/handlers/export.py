"""Export jobs: an adapter merged into its base model's weights, as a full HF checkpoint + tokenizer
(``format: hf``, the default) or as one ``.gguf`` for llama.cpp / Ollama (``format: gguf``) registered
as a file of the owner, whose content ``GET /v1/files/{id}/content`` serves (as batch outputs are)."""
from __future__ import annotations

from models.registry import Adapter
from worker.handlers.job_files import register_job_file
from worker.job_context import JobContext, JobFailed
from worker.resources import artifact_store, resolve_base_model_dir

GGUF_PURPOSE = "export"


def run_export_job(ctx: JobContext) -> dict:
    store = artifact_store(ctx.settings)
    with ctx.session() as s:
        a = s.get(Adapter, ctx.params["adapter_id"])
        if a is None or a.owner_id != ctx.owner_id:
            raise JobFailed("adapter_not_found", f"adapter {ctx.params['adapter_id']} no longer exists", "adapter_id")
        adapter_path, base, name = store.resolve(a.path), a.base_model, a.name
        model_dir = resolve_base_model_dir(s, ctx.settings, base)
    if ctx.params.get("format", "hf") == "gguf":
        return _export_gguf(ctx, model_dir, adapter_path, base, name)
    from worker.ml.training.lora import merge_adapter

    out = merge_adapter(model_dir, adapter_path, ctx.work_dir / "merged")
    ctx.emit(f"Merged adapter into {base}: {out}")
    return {"format": "hf", "merged_model_dir": store.relative(out), "base_model": base}


def _export_gguf(ctx: JobContext, model_dir, adapter_path, base: str, name: str) -> dict:
    from worker.ml.export.adapter_gguf import export_adapter_gguf

    dtype = ctx.params.get("dtype", "f16")
    out = ctx.work_dir / f"{ctx.job_id}.{dtype}.gguf"
    try:
        written = export_adapter_gguf(model_dir, adapter_path, out, dtype=dtype, name=name, work_dir=ctx.work_dir)
    except ValueError as e:  # a base the GGUF writer cannot describe (not LLaMA, unknown tokenizer...)
        raise JobFailed("unsupported_model", str(e), "adapter_id") from e
    filename = f"{name.replace(':', '_')}.{dtype}.gguf"
    file_id = register_job_file(ctx, out, role="gguf", filename=filename, purpose=GGUF_PURPOSE)
    out.unlink(missing_ok=True)
    ctx.emit(f"Exported {name} as GGUF ({dtype}, chat template from prompt template "
             f"{written['prompt_template']!r}): file {file_id}, {written['bytes']} bytes",
             data={"file_id": file_id, **written})
    return {"format": "gguf", "file_id": file_id, "filename": filename, "base_model": base, **written}
