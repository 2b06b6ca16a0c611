#!/usr/bin/env bash
# GPU check: run on a lent CUDA machine from the repo root. Installs what it needs, runs the GPU path
# of the engines and the benchmarks beside the references, and prints the figures (JSON lines).
# Usage: bash bench/gpu_check.sh [OUT_DIR]      (OUT_DIR defaults to $OUT or ./bench/out)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-bench/out}}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
if [ ! -x .venv-gpu/bin/python ]; then
  "$PY" -m venv .venv-gpu
  . .venv-gpu/bin/activate
  # A CUDA build of torch (from wheels carried in ./wheels when there is no index), then the package.
  if ls wheels/torch-*.whl >/dev/null 2>&1; then pip install -q --no-index --find-links wheels torch; else pip install -q "torch>=2.4,<2.15"; fi
  pip install -q -e ".[worker,dev]" ${WHEELS:+--find-links wheels} bitsandbytes || true
else
  . .venv-gpu/bin/activate
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
export LORAFLEET_DEVICE=cuda BENCH_CACHE=${BENCH_CACHE:-/tmp/bench-cache}
REF=../shared/bench
DATA=../shared/data
run() { echo "== $*"; "$@" 2>>"$OUT/stderr.log" | tail -1 | tee -a "$OUT/results.jsonl"; }

# 1. Quality on the real small model: fine-tune parity pair and generation pair (same work as on CPU).
run python -m bench.finetune --data $DATA/alpaca_data_en.json --examples 512 --micro-batch 4 --batch 16 --epochs 1 --cutoff 256 --seed 42 --train-on-inputs
(cd $REF && run python ref_finetune.py --data ../data/alpaca_data_en.json --examples 512 --micro-batch 4 --batch 16 --epochs 1 --cutoff 256 --seed 42)
run python -m bench.generate --data $DATA/user_oriented_instructions.jsonl --n 64 --max-new-tokens 128 --outputs-out "$OUT/gen_ours.jsonl"
(cd $REF && run python ref_generate.py --data ../data/user_oriented_instructions.jsonl --n 64 --max-new-tokens 128 --outputs-out "$OLDPWD/$OUT/gen_ref.jsonl")

# 2. Speed at real scale: randomly initialised LLaMA shapes (1B, 7B), tokens/s and MFU for training.
#    (ref_finetune.py pins use_cpu=True, so there is no GPU reference pair at these shapes: MFU is the yardstick.)
for shape in 1b 7b; do
  run python -m bench.finetune --data $DATA/alpaca_data_en.json --examples 256 --micro-batch 8 --batch 64 --epochs 1 --cutoff 512 --seed 42 --random-shape $shape
done
# 3. QLoRA / 8-bit loading paths (bitsandbytes), gradient checkpointing.
run python -m pytest -q -m gpu tests  # tests/worker/ml/test_cuda_paths.py: packed vs unpacked bf16, grad ckpt, 8/4-bit, engine cuda==cpu
echo "figures in $OUT/results.jsonl"
