"""An adapter out of the service: merged into its base, as one ``.gguf`` carrying the prompt template
the adapter was trained with as its chat template."""
from __future__ import annotations

import shutil
from pathlib import Path

from worker.ml.decoding.adapter_cache import read_adapter_template
from worker.ml.export.chat_template import training_chat_template
from worker.ml.export.gguf_file import write_gguf
from worker.ml.export.gguf_tensors import ExportDtype

DEFAULT_TEMPLATE = "alpaca"  # what serving uses for an adapter that records none


def trained_prompt_template(adapter_dir: Path) -> str:
    """The template the adapter was trained with (its ``config.json``), as serving reads it."""
    return read_adapter_template(Path(adapter_dir)) or DEFAULT_TEMPLATE


def export_adapter_gguf(base_model_dir: Path, adapter_dir: Path, out_path: Path, *, dtype: ExportDtype,
                        name: str, work_dir: Path) -> dict:
    """Merge ``adapter_dir`` into the base (a scratch HF folder in ``work_dir``, removed after) and write
    ``out_path``; returns what was written (template, dtype, size)."""
    from transformers import AutoTokenizer

    from worker.ml.training.lora import merge_adapter

    template = trained_prompt_template(adapter_dir)
    base_template = AutoTokenizer.from_pretrained(str(base_model_dir)).chat_template
    chat_template = training_chat_template(template, base_template)
    merged = merge_adapter(base_model_dir, adapter_dir, Path(work_dir) / "merged-for-gguf")
    try:
        write_gguf(merged, out_path, dtype=dtype, chat_template=chat_template, name=name)
    finally:
        shutil.rmtree(merged, ignore_errors=True)
    return {"prompt_template": template, "dtype": dtype, "bytes": Path(out_path).stat().st_size}
