#!/usr/bin/env bash
# Concurrent Delta commits under CPU starvation: the concurrent-writer scenarios
# (tests/tests/integration/concurrent_writers.rs: local and S3 lakes, 2-4 writers, a table
# created by the race or already there, lost and slow commit acknowledgements on S3) run
# ITERATIONS times each, with every process pinned to one core and that core kept busy.
#
#   bash scripts/stress-commits.sh [ITERATIONS] [--stock-moto]
#
# ITERATIONS: rounds of the 12 scenarios of each lake kind (default 10: 240 scenario runs,
# about an hour on this 2-core machine; the S3 ones take ~15 s each on the busy core). --stock-moto
# runs against moto's own entry point instead of scripts/moto_server.py: its create-only
# PUTs race (check, then store), and this shows the lost commits that follow.
# Background load: stress-ng (Debian package stress-ng) if installed, else busy shells.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/tributary-target}"
iterations="${1:-10}"
stock=""
[ "${2:-}" = "--stock-moto" ] && stock="--stock"

source "$root/scripts/lib/moto.sh"
load_pids=()
MOTO_PID=""
cleanup() {
  kill ${MOTO_PID:+"$MOTO_PID"} "${load_pids[@]}" 2>/dev/null || true
}
trap cleanup EXIT
moto_start $stock

echo "== build"
cargo test -p tributary-tests --test integration --no-run 2>&1 | tail -1

# Everything on core 0 (the server, the writers, the load): the writers' and the server's
# threads are descheduled at arbitrary points, as on a busy laptop or CI runner.
taskset -a -p 1 "$MOTO_PID" >/dev/null
if command -v stress-ng >/dev/null; then
  stress-ng --cpu 2 --taskset 0 --quiet &
  load_pids+=($!)
  load="stress-ng --cpu 2 on core 0"
else
  for _ in 1 2; do taskset 1 sh -c 'while :; do :; done' & load_pids+=($!); done
  load="2 busy shells on core 0"
fi
echo "== $iterations rounds x 12 scenarios; load: $load; all processes pinned to core 0"
start=$(date +%s)
out="$(mktemp)"
set +e
TRIBUTARY_STRESS_ITERATIONS="$iterations" taskset 1 \
  cargo test -p tributary-tests --test integration concurrent_writers -- --test-threads 1 --nocapture >"$out" 2>&1
status=$?
set -e
grep -E "^test |test result|panicked|rows of|duplicates" "$out" || tail -30 "$out"
echo "== scenario runs that passed: local $(grep -c 'scenario ok: Scenario { s3: false' "$out"), S3 $(grep -c 'scenario ok: Scenario { s3: true' "$out")"
rm -f "$out"
echo "== $((iterations * 12)) scenario runs asked per lake kind; $(( $(date +%s) - start )) s (exit $status)"
exit "$status"
