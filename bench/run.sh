#!/usr/bin/env bash
# One command for the ingest benchmark: pinned DuckDB in a venv, a release build, then run.py.
# Not a test: it prints figures. Usage: bench/run.sh [--records N] [--runs R]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/setup.sh"
bench_setup
exec "$venv/bin/python" "$here/run.py" "$@"
