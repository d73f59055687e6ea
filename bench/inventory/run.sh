#!/usr/bin/env bash
# Runs the inventory benchmark (see bench.py's docstring) with the repo's venv.
#   bench/inventory/run.sh [--payments N] [--skus S] [--pgbench-seconds T]
#                          [--batch-max B] [--concurrent]
# OF_BIN_DIR selects the inventory binary (default build/bin).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
py="$root/.venv/bin/python"
[[ -x "$py" ]] || { echo "run.sh: $py missing (make venv)" >&2; exit 2; }
exec "$py" "$here/bench.py" "$@"
