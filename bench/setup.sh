# Sourced by bench/*.sh (with `here` set): the pinned venv under bench/out/venv — DuckDB from
# ../shared/bench/requirements.txt, plus the extras a benchmark names — and a release build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/tributary-target}"
venv="$here/out/venv"

bench_setup() {
  local req="$here/../../shared/bench/requirements.txt"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -c "import duckdb" 2>/dev/null \
    || "$venv/bin/pip" install -q "$(grep '^duckdb==' "$req")"
  for extra in "$@"; do
    case "$extra" in
      pyarrow) "$venv/bin/python" -c "import pyarrow" 2>/dev/null \
                 || "$venv/bin/pip" install -q "$(grep '^pyarrow==' "$req")" ;;
      cargo-lambda) [ -x "$venv/bin/cargo-lambda" ] || "$venv/bin/pip" install -q cargo-lambda==1.9.2 ;;
      *) echo "bench_setup: unknown extra $extra" >&2; return 1 ;;
    esac
  done
  cargo build --release -p tributary --manifest-path "$here/../Cargo.toml"
}
