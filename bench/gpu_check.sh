#!/usr/bin/env bash
# GPU check (issue 12): our fine-tuning loop against the tuned HF Trainer on randomly initialised LLaMA
# 1B and 7B shapes (bench/finetune.py RANDOM_SHAPES), same rows, same batch; JSON lines with tokens/s,
# peak memory and MFU. Made for a lent GPU machine with CUDA torch installed and no package index.
#
#   bash bench/gpu_check.sh --prepare   # here, with a package index: builds bench/out/gpu_kit (< 64 MiB):
#                                       # pure-python wheels + small binary ones for CPython 3.10-3.13,
#                                       # the tokenizer files, 4096 Alpaca rows
#   bash bench/gpu_check.sh             # on the GPU machine (carry bench/out/gpu_kit): ~8 minutes
#   bash bench/gpu_check.sh --dry-run   # the same path on a CPU host with a tiny shape (seconds)
#
# Figures go to stdout and to $OUT/gpu_check.jsonl ($OUT or bench/out); stderr of each run to $OUT/*.err.
set -uo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-run}
KIT=${GPU_KIT:-bench/out/gpu_kit}
OUT=${OUT:-bench/out}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
RESULTS="$OUT/gpu_check.jsonl"

prepare() {
  mkdir -p "$KIT/wheels" "$KIT/tokenizer"
  # the closure of transformers/peft/accelerate/pydantic as installed in .venv, minus torch/numpy (present there)
  reqs=$(.venv/bin/python - <<'EOF'
import importlib.metadata as md, re
skip = {"torch", "numpy", "triton", "setuptools", "sympy", "networkx", "jinja2", "markupsafe", "mpmath"}
todo, seen = ["transformers", "peft", "accelerate", "pydantic"], {}
while todo:
    key = re.sub(r"[-_.]+", "-", todo.pop()).lower()
    if key in seen or key in skip or key.startswith("nvidia"):
        continue
    try:
        dist = md.distribution(key)
    except md.PackageNotFoundError:
        continue
    seen[key] = dist.version
    todo += [re.split(r"[ ;<>=!~\[(]", r, maxsplit=1)[0] for r in dist.requires or [] if "extra ==" not in r]
print(" ".join(f"{k}=={v}" for k, v in sorted(seen.items())))
EOF
)
  for v in 3.10 3.11 3.12 3.13; do
    .venv/bin/pip download -q --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --python-version "$v" \
      --implementation cp -d "$KIT/wheels" $reqs || echo "some wheels missing for CPython $v" >&2
  done
  .venv/bin/python - "$KIT" <<'EOF'
import json, random, shutil, sys
from pathlib import Path
from bench.finetune import DEFAULT_MODELS_DIR
from worker.ml.base_models import materialise_builtin
kit = Path(sys.argv[1])
src = materialise_builtin("smollm2-135m-instruct", DEFAULT_MODELS_DIR)
for f in src.iterdir():
    if f.name.startswith("tokenizer") or f.name in ("special_tokens_map.json", "chat_template.jinja"):
        shutil.copy2(f, kit / "tokenizer" / f.name)
rows = json.loads(Path("../shared/data/alpaca_data_en.json").read_text())
random.Random(0).shuffle(rows)
(kit / "alpaca_4096.json").write_text(json.dumps(rows[:4096]))
EOF
  du -sh "$KIT"
  size=$(du -sm "$KIT" | cut -f1)
  [ "$size" -le 64 ] || { echo "kit is ${size} MiB, over 64 MiB" >&2; exit 1; }
}

# A python with torch; transformers/peft/accelerate/pydantic from the kit's wheels when missing.
python_env() {
  "$PY" - <<'EOF' || exit 1
import torch
print(f"torch {torch.__version__}, cuda available: {torch.cuda.is_available()}")
EOF
  if ! "$PY" -c "import transformers, peft, accelerate, pydantic" 2>/dev/null; then
    VENV=${TMPDIR:-/tmp}/lorafleet-gpu-venv
    [ -x "$VENV/bin/python" ] || "$PY" -m venv --system-site-packages "$VENV"
    "$VENV/bin/python" -m pip install -q --no-index --find-links "$KIT/wheels" transformers peft accelerate pydantic \
      || { echo "could not install from $KIT/wheels" >&2; exit 1; }
    PY="$VENV/bin/python"
  fi
  "$PY" - <<'EOF' | tee -a "$RESULTS"
import importlib.util, json, torch, transformers, peft
have = lambda m: importlib.util.find_spec(m) is not None
print(json.dumps({"env": True, "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
                  "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                  "liger_kernel": have("liger_kernel"), "flash_attn": have("flash_attn")}))
EOF
}

# one measurement: label, time limit, command; its last line (JSON) goes to the results
measure() {
  local label=$1 limit=$2; shift 2
  echo "== $label" >&2
  local line
  line=$(timeout "$limit" "$@" 2>"$OUT/$label.err" | tail -1)
  if [ -z "$line" ] || [ "${line:0:1}" != "{" ]; then
    line="{\"label\": \"$label\", \"error\": \"no result (exit or timeout after ${limit}s), see $OUT/$label.err\"}"
  else
    line="{\"label\": \"$label\", ${line:1}"
  fi
  echo "$line" | tee -a "$RESULTS"
}

pair() {  # shape, examples, micro-batch, batch, cutoff, limit per run
  local shape=$1 n=$2 mb=$3 b=$4 cut=$5 limit=$6 dir=${TMPDIR:-/tmp}/lorafleet-random-$1
  local common=(--data "$KIT/alpaca_4096.json" --random-shape "$shape" --tokenizer "$KIT/tokenizer" --random-dir "$dir"
                --examples "$n" --micro-batch "$mb" --batch "$b" --cutoff "$cut" --seed 42)
  measure "lorafleet-$shape" "$limit" "$PY" -m bench.finetune "${common[@]}" --epochs 1 --train-on-inputs
  measure "trainer-$shape" "$limit" "$PY" -m bench.trainer_reference "${common[@]}"
}

case "$MODE" in
  --prepare) prepare ;;
  --dry-run)
    python_env
    pair tiny 16 4 8 128 300
    rm -rf "${TMPDIR:-/tmp}/lorafleet-random-tiny"
    ;;
  run|*)
    [ -d "$KIT/wheels" ] || echo "no kit at $KIT (bash bench/gpu_check.sh --prepare): using what is installed" >&2
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >&2 || true
    python_env
    pair 1b 512 8 64 512 150
    pair 7b 256 8 64 512 210
    rm -rf "${TMPDIR:-/tmp}/lorafleet-random-7b"
    if [ "$SECONDS" -lt 330 ]; then  # time left: compile and Liger off on 1B, each on its own
      dir=${TMPDIR:-/tmp}/lorafleet-random-1b
      for t in compile=off liger_kernels=off; do
        measure "lorafleet-1b-$t" 120 "$PY" -m bench.finetune --data "$KIT/alpaca_4096.json" --random-shape 1b \
          --tokenizer "$KIT/tokenizer" --random-dir "$dir" --examples 512 --micro-batch 8 --batch 64 --cutoff 512 \
          --seed 42 --epochs 1 --train-on-inputs --set "$t"
      done
    fi
    rm -rf "${TMPDIR:-/tmp}/lorafleet-random-1b"
    ;;
esac
echo "done in ${SECONDS}s; figures in $RESULTS" >&2
