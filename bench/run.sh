#!/usr/bin/env bash
# One command for the ingest benchmark: pinned DuckDB in a venv, a release build, then run.py.
# Not a test: it prints figures. Usage: bench/run.sh [--records N] [--runs R]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/tributary-target}"
venv="$here/out/venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "$(grep '^duckdb==' "$here/../../shared/bench/requirements.txt")"
fi
cargo build --release -p tributary --manifest-path "$here/../Cargo.toml"
exec "$venv/bin/python" "$here/run.py" "$@"
