"""What batch-invariant decoding (``LORAFLEET_BATCH_INVARIANT``) buys and costs, on the embedded base model.

The first N Alpaca-style prompts of an eval JSONL (as ``bench/generate.py``), greedy, are decoded three ways:
each alone (the reference answers), in one batch by the default engine, and in one batch by the
batch-invariant engine. Prints one JSON line: tokens/s of both batched runs and how many answers differ
from the same prompt decoded alone. Timings on a shared machine vary run to run: compare runs made together.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.generate import DEFAULT_MODELS_DIR, load_prompts


def timed(engine, requests) -> tuple[list, float]:
    start = time.perf_counter()
    results = engine.generate(requests)
    return results, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, type=Path, help="JSONL with instruction/input or instances")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    ap.add_argument("--base-model", type=Path, help="HF checkpoint dir (default: the embedded base model)")
    a = ap.parse_args(argv)

    from contracts.decoding import DecodeRequest
    from worker.ml.base_models import materialise_builtin
    from worker.ml.decoding.engine import InferenceEngine

    base = a.base_model or materialise_builtin("smollm2-135m-instruct", DEFAULT_MODELS_DIR)
    batched = InferenceEngine(base, dtype=a.dtype)
    invariant = InferenceEngine(base, dtype=a.dtype, batch_invariant=True)
    requests = [DecodeRequest(prompt=p, max_new_tokens=a.max_new_tokens, temperature=0)
                for p in load_prompts(a.data, a.n)]
    alone = [invariant.generate([r])[0].text for r in requests]
    report = {"dtype": str(batched.dtype).removeprefix("torch."), "prompts": len(requests),
              "max_new_tokens": a.max_new_tokens}
    for name, engine in (("default", batched), ("batch_invariant", invariant)):
        results, seconds = timed(engine, requests)
        tokens = sum(r.completion_tokens for r in results)
        report[name] = {"tokens_per_s": round(tokens / seconds, 1), "seconds": round(seconds, 2),
                        "differ_from_alone": sum(r.text != want for r, want in zip(results, alone))}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
