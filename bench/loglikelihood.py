"""Batched loglikelihood scoring benchmark (``score_continuations``) beside
../shared/bench/ref_loglikelihood.py (DESIGN.md section 7).

Same work as the reference: the first N Alpaca rows with a non-empty output; context = the Alpaca
prompt of instruction (+ input), continuation = the output. Tokens: ``context + continuation`` is
tokenised once without special tokens; the continuation is every token after the first
``len(tokenize(context))``. The score is the sum of the continuation tokens' log-probabilities.
Prints one JSON line last; ``--out`` writes one JSON number per pair, in order.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DEFAULT_MODELS_DIR = Path.home() / ".cache" / "lorafleet-test" / "models"


def load_pairs(path: Path, n: int) -> list[tuple[str, str]]:
    """(context, continuation) of the first ``n`` rows with an output, as the reference builds them."""
    from contracts.prompts import render_prompt

    rows = [r for r in json.loads(path.read_text()) if r["output"].strip()][:n]
    return [(render_prompt(r["instruction"], r["input"]), r["output"]) for r in rows]


def tokenised_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    ids = tokenizer(context + continuation, add_special_tokens=False).input_ids
    k = len(tokenizer(context, add_special_tokens=False).input_ids)
    return ids[:k], ids[k:]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, type=Path, help="Alpaca JSON (instruction, input, output)")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    ap.add_argument("--out", type=Path, help="write each pair's score, one JSON number a line")
    ap.add_argument("--base-model", type=Path, help="HF checkpoint dir (default: the embedded base model)")
    a = ap.parse_args(argv)

    from worker.ml.base_models import materialise_builtin
    from worker.ml.decoding.engine import InferenceEngine
    from worker.ml.decoding.scoring import ScoreItem, score_continuations

    base = a.base_model or materialise_builtin("smollm2-135m-instruct", DEFAULT_MODELS_DIR)
    engine = InferenceEngine(base, dtype=a.dtype)
    pairs = load_pairs(a.data, a.n)
    start = time.perf_counter()
    items = [ScoreItem(*tokenised_pair(engine.tokenizer, ctx, cont)) for ctx, cont in pairs]
    results = score_continuations(engine.loaded, items, engine.max_batch_tokens)
    seconds = time.perf_counter() - start
    if a.out:
        a.out.write_text("".join(json.dumps(r.logprob) + "\n" for r in results))
    print(json.dumps({"impl": "lorafleet-batched", "dtype": str(engine.dtype).removeprefix("torch."),
                      "pairs": len(results), "tokens": sum(len(it.continuation_ids) for it in items),
                      "seconds": round(seconds, 2), "pairs_per_s": round(len(results) / seconds, 2)}))


if __name__ == "__main__":
    main()
