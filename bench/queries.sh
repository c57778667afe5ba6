#!/usr/bin/env bash
# One command for the query benchmark: pinned DuckDB + pyarrow in a venv, a release build,
# then queries.py. Not a test: it prints figures. Usage: bench/queries.sh [--runs R]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/setup.sh"
bench_setup pyarrow
exec "$venv/bin/python" "$here/queries.py" "$@"
