#!/usr/bin/env bash
# Every performance figure in one command (not a test: it prints figures): ingest
# (bench/run.py), queries (bench/queries.py) and scaling (bench/scaling.py), each Tributary
# next to DuckDB in the same run, with ratios. ~15 minutes on 2 cores after the release build.
# Usage: bench/all.sh [--runs R]   (default 3)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/setup.sh"
bench_setup
runs=3
if [ "${1:-}" = "--runs" ]; then runs="$2"; fi
"$venv/bin/python" "$here/run.py" --runs "$runs"
"$venv/bin/python" "$here/queries.py" --runs "$((runs + 2))"
"$venv/bin/python" "$here/scaling.py" --runs "$runs"
