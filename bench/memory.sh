#!/usr/bin/env bash
# Peak memory at 1x and 4x input, Tributary next to DuckDB (not a test: it prints figures).
# Usage: bench/memory.sh [--records N]   (default 1,000,000; needs ~1.6 GB of disk in bench/out)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/tributary-target}"
venv="$here/out/venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "$(grep '^duckdb==' "$here/../../shared/bench/requirements.txt")"
fi
cargo build --release -p tributary --manifest-path "$here/../Cargo.toml"
exec "$venv/bin/python" "$here/memory.py" "$@"
