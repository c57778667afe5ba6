#!/usr/bin/env bash
# Cold invoke time of `tributary invoke` on a 100-record Kinesis batch, next to DuckDB (not a
# test: it prints figures). Usage: bench/invoke.sh [--runs N]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/tributary-target}"
venv="$here/out/venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "$(grep '^duckdb==' "$here/../../shared/bench/requirements.txt")"
fi
[ -x "$venv/bin/cargo-lambda" ] || "$venv/bin/pip" install -q cargo-lambda==1.9.2
cargo build --release -p tributary --manifest-path "$here/../Cargo.toml"
exec "$venv/bin/python" "$here/invoke.py" "$@"
