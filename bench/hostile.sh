#!/usr/bin/env bash
# Hostile-input probe of `tributary serve` (bench/hostile.py): figures, not pass/fail.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/setup.sh"
bench_setup
"$venv/bin/python" "$here/hostile.py" "$@"
