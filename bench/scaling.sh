#!/usr/bin/env bash
# Ingest time and peak memory at 1x and 4x input and at 1 and 2 workers, Tributary next to
# DuckDB (not a test: it prints figures).
# Usage: bench/scaling.sh [--records N] [--runs R]   (default 2,000,000; 4x needs ~2.6 GB of disk)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/setup.sh"
bench_setup
exec "$venv/bin/python" "$here/scaling.py" "$@"
