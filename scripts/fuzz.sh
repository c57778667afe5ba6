#!/usr/bin/env bash
# Fuzzes the config loader, the NDJSON decoder and schedule expressions with cargo-fuzz
# (libFuzzer; nightly Rust). A crash, panic or stack overflow fails the run.
#   scripts/fuzz.sh smoke                  the test command's run: fixed seed and run counts
#                                          (~15 s per target), so CI is repeatable
#   scripts/fuzz.sh [SECONDS_PER_TARGET]   exploratory: random seed, default 300 s per target
# The corpus grows in fuzz/corpus/<target> (seeds are checked in); findings go to
# fuzz/artifacts/<target>.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
mode="${1:-300}"
tools="${TRIBUTARY_TOOLS:-/var/tmp/tributary-tools}"
fuzz="$tools/cargo-fuzz-0.13.2"
if [ ! -x "$fuzz/bin/cargo-fuzz" ]; then
  echo "== installing cargo-fuzz 0.13.2 into $fuzz"
  cargo install --quiet --locked cargo-fuzz --version 0.13.2 --root "$fuzz"
fi
rustup run nightly rustc --version >/dev/null 2>&1 \
  || { echo "cargo-fuzz needs a nightly toolchain: rustup toolchain install nightly"; exit 1; }
export PATH="$fuzz/bin:$PATH"
# Its own target dir outside the clone (nightly, instrumented): reused across runs.
target="${TRIBUTARY_FUZZ_TARGET_DIR:-/var/tmp/tributary-fuzz-target}"
cd "$root/fuzz"
# -s none: the code under test is safe Rust; we look for panics, aborts and overflows.
# --dev: the debug profile builds in minutes instead of the release profile's half hour.
cargo +nightly fuzz build --dev -s none --target-dir "$target"
for t in config ndjson schedule; do
  mkdir -p "corpus/$t" "artifacts/$t"
  work="$(mktemp -d)"
  cp -r "corpus/$t/." "$work/"
  if [ "$mode" = smoke ]; then
    case "$t" in config) runs=4000 ;; ndjson) runs=400 ;; *) runs=100000 ;; esac
    limit=(-seed=1 -runs="$runs")
  else
    limit=(-max_total_time="$mode")
  fi
  # The binaries built above, run directly: no rebuild between targets.
  out="$("$target/x86_64-unknown-linux-gnu/debug/$t" "$work" "${limit[@]}" \
    -max_len=8192 -timeout=20 -rss_limit_mb=4096 \
    -artifact_prefix="artifacts/$t/" 2>&1)" || {
      echo "$out" | tail -40
      # Keep the findings outside the clone (CI deletes it), and show them.
      keep="${TRIBUTARY_FUZZ_ARTIFACTS:-/var/tmp/tributary-fuzz-artifacts}/$t-$(date +%Y%m%d-%H%M%S)"
      mkdir -p "$keep" && cp -r "artifacts/$t/." "$keep/" && echo "findings copied to $keep"
      for f in "artifacts/$t"/*; do
        [ -f "$f" ] && echo "$f (base64): $(head -c 16384 "$f" | base64 -w0)"
      done
      rm -rf "$work"
      echo "fuzz target $t FAILED"; exit 1; }
  runs="$(echo "$out" | grep -o 'Done [0-9]* runs in [0-9]* second' | tail -1)"
  corpus="$(ls "$work" | wc -l)"
  rm -rf "$work"
  echo "fuzz $t: ${runs:-no summary}(s), corpus $corpus inputs, no crash"
done
