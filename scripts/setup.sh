#!/usr/bin/env bash
# Create .venv and install lorafleet with its worker and dev extras. Idempotent and quick when done.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
stamp=.venv/.lorafleet-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  python -m pip install -q --upgrade pip
  # The CPU build of torch that lies on this disk; other pins would pull gigabytes of CUDA wheels.
  python -m pip install -q "torch==2.13.0"
  python -m pip install -q -e ".[worker,dev,test]"
  touch "$stamp"
fi
