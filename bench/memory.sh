#!/usr/bin/env bash
# Peak memory at 1x and 4x input, Tributary next to DuckDB (not a test: it prints figures).
# Usage: bench/memory.sh [--records N]   (default 1,000,000; needs ~1.6 GB of disk in bench/out)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/setup.sh"
bench_setup
exec "$venv/bin/python" "$here/memory.py" "$@"
