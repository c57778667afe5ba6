#!/usr/bin/env bash
# The test command, RUNS times in a row, with one core's worth of background load the whole
# time (as on a laptop running a build, or a shared CI runner): every run must pass.
#
#   bash scripts/test-under-load.sh [RUNS]      (default 3)
#
# Load: `stress-ng --cpu 1` (Debian package stress-ng) if installed, else one busy shell.
# Prints each run's time and result, and exits non-zero if any run failed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
runs="${1:-3}"
if command -v stress-ng >/dev/null; then
  stress-ng --cpu 1 --quiet &
  load="stress-ng --cpu 1"
else
  sh -c 'while :; do :; done' &
  load="one busy shell"
fi
load_pid=$!
trap 'kill "$load_pid" 2>/dev/null || true' EXIT
echo "== background load: $load ($(nproc) cores)"
failed=0
summary=()
for i in $(seq 1 "$runs"); do
  log="$(mktemp /tmp/tributary-under-load-XXXX.log)"
  start=$(date +%s)
  if bash scripts/test.sh >"$log" 2>&1; then result=passed; else result=FAILED; failed=$((failed + 1)); fi
  took=$(( $(date +%s) - start ))
  line="run $i: $result in ${took} s ($(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1 || true)); log: $log"
  echo "$line"
  summary+=("$line")
  if [ "$result" = FAILED ]; then
    grep -E "^test .* FAILED|panicked at|^failures:" "$log" | head -20 || tail -20 "$log"
  fi
done
echo "== $runs runs under load: $((runs - failed)) passed, $failed failed"
printf '%s\n' "${summary[@]}"
[ "$failed" -eq 0 ]
