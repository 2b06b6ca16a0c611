"""Near-duplicate filter benchmark, same work and fields as ../shared/bench/ref_rouge_filter.py.

    python -m bench.dedup --data ../shared/data/alpaca_data_en.json --n 3000 --kept-out kept.json

Each candidate instruction is kept unless its ROUGE-L F1 against an instruction kept before it
is > 0.7 (rouge_score's decisions, via worker.ml.selfinstruct.rouge.RougeFilter). Prints one
JSON line last: candidates, kept, seconds, candidates_per_s; --kept-out gets the kept indices.
"""
from __future__ import annotations

import argparse
import json
import time

from worker.ml.selfinstruct.rouge import RougeFilter


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="Alpaca JSON (a list of {instruction, input, output})")
    ap.add_argument("--n", type=int, default=1000, help="first N instructions (<=0: all)")
    ap.add_argument("--kept-out", help="write the kept indices here as a JSON list")
    ap.add_argument("--threshold", type=float, default=0.7)
    ap.add_argument("--tokenizer", default="rouge_score", choices=["rouge_score", "cjk"])
    a = ap.parse_args(argv)
    with open(a.data, encoding="utf-8") as f:
        rows = json.load(f)
    cands = [r["instruction"] for r in (rows[: a.n] if a.n > 0 else rows)]
    t = time.perf_counter()
    kept = RougeFilter(threshold=a.threshold, tokenizer=a.tokenizer).filter_candidates(cands)
    dt = time.perf_counter() - t
    if a.kept_out:
        with open(a.kept_out, "w") as f:
            json.dump(kept, f)
    print(json.dumps({"impl": "lorafleet-RougeFilter", "candidates": len(cands), "kept": len(kept),
                      "seconds": round(dt, 2), "candidates_per_s": round(len(cands) / dt, 1)}))


if __name__ == "__main__":
    main()
