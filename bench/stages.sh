#!/usr/bin/env bash
# One command for the split-stage benchmark (transform throughput by workers): pinned DuckDB in a venv, a release build, then stages.py.
# Not a test: it prints figures. Usage: bench/stages.sh [--workers 1,2] [--runs R]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/tributary-target}"
venv="$here/out/venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "$(grep '^duckdb==' "$here/../../shared/bench/requirements.txt")"
fi
cargo build --release -p tributary --manifest-path "$here/../Cargo.toml"
exec "$venv/bin/python" "$here/stages.py" "$@"
