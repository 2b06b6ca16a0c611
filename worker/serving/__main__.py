"""``python -m worker.serving --base-model DIR --port P [--adapter NAME=DIR ...]`` for manual runs."""
from __future__ import annotations

import argparse
from pathlib import Path

from contracts.decoding import ModelTarget


def build_targets(base_name: str, adapters: list[str]) -> dict[str, ModelTarget]:
    targets = {base_name: ModelTarget(base_name, None)}
    for spec in adapters:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--adapter takes NAME=DIR, got {spec!r}")
        targets[name] = ModelTarget(name, Path(path))
    return targets


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--base-model", required=True, type=Path, help="HF checkpoint dir of the base model")
    ap.add_argument("--model-name", help="name clients use for the base model (default: the dir name)")
    ap.add_argument("--adapter", action="append", default=[], help="NAME=DIR of a LoRA adapter (repeatable)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    ap.add_argument("--deterministic", action="store_true", help="batch-invariant decoding (each row alone)")
    ap.add_argument("--batch-window-ms", type=float, default=5.0)
    ap.add_argument("--max-batch-rows", type=int, default=32)
    a = ap.parse_args(argv)

    import uvicorn

    from worker.ml.decoding.engine import InferenceEngine
    from worker.serving.app import create_serving_app

    targets = build_targets(a.model_name or a.base_model.name, a.adapter)
    app = create_serving_app(lambda: InferenceEngine(a.base_model, device=a.device, dtype=a.dtype,
                                                     batch_invariant=a.deterministic),
                             targets.__getitem__, list_models=lambda: list(targets),
                             batch_window_ms=a.batch_window_ms, max_batch_rows=a.max_batch_rows)
    uvicorn.run(app, host=a.host, port=a.port)


if __name__ == "__main__":
    main()
