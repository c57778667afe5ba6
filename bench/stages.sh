#!/usr/bin/env bash
# One command for the split-stage benchmark (transform throughput by workers): pinned DuckDB
# in a venv, a release build, then stages.py.
# Not a test: it prints figures. Usage: bench/stages.sh [--workers 1,2] [--runs R]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/setup.sh"
bench_setup
exec "$venv/bin/python" "$here/stages.py" "$@"
