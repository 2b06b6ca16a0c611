"""Batched decoding benchmark (``InferenceEngine.generate``) beside ../shared/bench/ref_generate.py
(DESIGN.md section 7).

Same work as the reference: the first N rows of an eval JSONL, Alpaca prompt (instruction + input
or instances[0].input), greedy, max-new-tokens, the embedded base model; new tokens are counted up
to and including EOS per prompt. Prints one JSON line last.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DEFAULT_MODELS_DIR = Path.home() / ".cache" / "lorafleet-test" / "models"


def load_prompts(path: Path, n: int) -> list[str]:
    from contracts.prompts import render_prompt

    prompts = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        instance = row.get("instances", [{}])[0]
        prompts.append(render_prompt(row["instruction"], row.get("input", instance.get("input", ""))))
        if len(prompts) == n:
            break
    return prompts


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, type=Path, help="JSONL with instruction/input or instances")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    ap.add_argument("--outputs-out", type=Path, help="write the generated texts, one JSON string a line")
    ap.add_argument("--base-model", type=Path, help="HF checkpoint dir (default: the embedded base model)")
    a = ap.parse_args(argv)

    from contracts.decoding import DecodeRequest
    from worker.ml.base_models import materialise_builtin
    from worker.ml.decoding.engine import InferenceEngine

    base = a.base_model or materialise_builtin("smollm2-135m-instruct", DEFAULT_MODELS_DIR)
    engine = InferenceEngine(base, dtype=a.dtype)
    requests = [DecodeRequest(prompt=p, max_new_tokens=a.max_new_tokens) for p in load_prompts(a.data, a.n)]
    start = time.perf_counter()
    results = engine.generate(requests)
    seconds = time.perf_counter() - start
    new_tokens = sum(r.completion_tokens for r in results)
    if a.outputs_out:
        a.outputs_out.write_text("".join(json.dumps(r.text) + "\n" for r in results))
    print(json.dumps({"impl": "lorafleet-batched", "dtype": str(engine.dtype).removeprefix("torch."),
                      "prompts": len(results), "new_tokens": new_tokens, "seconds": round(seconds, 2),
                      "tokens_per_s": round(new_tokens / seconds, 1)}))


if __name__ == "__main__":
    main()
