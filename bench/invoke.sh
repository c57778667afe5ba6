#!/usr/bin/env bash
# Cold invoke time of `tributary invoke` on a 100-record Kinesis batch, next to DuckDB (not a
# test: it prints figures). Usage: bench/invoke.sh [--runs N]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/setup.sh"
bench_setup cargo-lambda
exec "$venv/bin/python" "$here/invoke.py" "$@"
