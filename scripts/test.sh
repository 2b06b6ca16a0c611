#!/usr/bin/env bash
# The test command: installs what is missing, then runs the whole suite against the local
# PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
exec python -m pytest -q -p no:cacheprovider "$@"
