#!/usr/bin/env bash
# The demo command: installs what is missing, then runs the whole pipeline on the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
exec lorafleet demo "$@"
