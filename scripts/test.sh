#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this).
# Needs: cargo (rustfmt, clippy) and python3 (the shared event generator, stdlib only).
set -euo pipefail
shopt -s inherit_errexit 2>/dev/null || true
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# A fixed target dir outside the clone, so fresh clones on one machine reuse the build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/tributary-target}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

command -v python3 >/dev/null || { echo "python3 is needed by the tests (../shared/bench/gen_events.py)"; exit 1; }
[ -f "$root/../shared/bench/gen_events.py" ] || { echo "../shared/bench/gen_events.py is missing beside the repo"; exit 1; }

echo "== fmt"
cargo fmt --all --check
echo "== clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== build (the CLI tests run the real binary)"
cargo build -p tributary --bins
echo "== test"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --workspace 2>&1 | tee "$log"
# One closing line over all test binaries.
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "%d passed, %d failed, %d skipped\n", p, f, i }' "$log"
