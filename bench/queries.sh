#!/usr/bin/env bash
# One command for the query benchmark: pinned DuckDB + pyarrow in a venv, a release build,
# then queries.py. Not a test: it prints figures. Usage: bench/queries.sh [--runs R]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/tributary-target}"
venv="$here/out/venv"
req="$here/../../shared/bench/requirements.txt"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import duckdb, pyarrow" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "$(grep '^duckdb==' "$req")" "$(grep '^pyarrow==' "$req")"
fi
cargo build --release -p tributary --manifest-path "$here/../Cargo.toml"
exec "$venv/bin/python" "$here/queries.py" "$@"
