#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this).
# Needs: cargo (rustfmt, clippy) and python3 with venv + pip (the shared event generator,
# and moto: the S3- and Kinesis-compatible server the tests talk to, installed here into a
# pinned venv outside the clone and started on 127.0.0.1 for the run).
set -euo pipefail
shopt -s inherit_errexit 2>/dev/null || true
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# A fixed target dir outside the clone, so fresh clones on one machine reuse the build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/tributary-target}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

command -v python3 >/dev/null || { echo "python3 is needed by the tests (../shared/bench/gen_events.py)"; exit 1; }
[ -f "$root/../shared/bench/gen_events.py" ] || { echo "../shared/bench/gen_events.py is missing beside the repo"; exit 1; }

tools="${TRIBUTARY_TOOLS:-/var/tmp/tributary-tools}"
# The S3 + Kinesis server: moto, pinned, in a venv reused across runs (scripts/lib/moto.sh).
source "$root/scripts/lib/moto.sh"
log=""
kin_pid=""
kin_log=""
MOTO_PID=""
cleanup() {
  kill ${MOTO_PID:+"$MOTO_PID"} ${kin_pid:+"$kin_pid"} 2>/dev/null || true
  rm -f ${kin_log:+"$kin_log"} ${log:+"$log"}
}
trap cleanup EXIT
moto_start

# Python test tools (PyPI, pinned): the real ADBC Flight SQL driver, and nbclient/ipykernel
# with pandas and matplotlib to execute notebooks/ headless.
py="$tools/pytools-1"
py_pkgs=(adbc-driver-flightsql==1.13.0 pyarrow==26.0.1 nbclient==0.10.2 nbformat==5.11.1
         ipykernel==7.4.0 pandas==3.1.1 matplotlib==3.11.2)
if [ ! -x "$py/bin/python" ] || ! "$py/bin/python" -c "import adbc_driver_flightsql, pyarrow, nbclient, ipykernel, pandas, matplotlib" 2>/dev/null; then
  echo "== installing ${py_pkgs[*]} into $py"
  rm -rf "$py"
  python3 -m venv "$py"
  "$py/bin/pip" install --quiet --disable-pip-version-check "${py_pkgs[@]}"
fi
export TRIBUTARY_TEST_PYTHON="$py/bin/python"

# cfn-lint (PyPI, pinned) checks the SAM templates `tributary deploy sam` writes.
cfn="$tools/cfn-lint-1.58.0"
if [ ! -x "$cfn/bin/cfn-lint" ]; then
  echo "== installing cfn-lint 1.58.0 into $cfn"
  rm -rf "$cfn"
  python3 -m venv "$cfn"
  "$cfn/bin/pip" install --quiet --disable-pip-version-check cfn-lint==1.58.0
fi
export TRIBUTARY_TEST_CFN_LINT="$cfn/bin/cfn-lint"

# cargo-lambda (PyPI wheel of the binary, pinned): its `watch --only-lambda-apis` is the Lambda
# Runtime API the `bootstrap` test polls.
cl="$tools/cargo-lambda-1.9.2"
if [ ! -x "$cl/bin/cargo-lambda" ]; then
  echo "== installing cargo-lambda 1.9.2 into $cl"
  rm -rf "$cl"
  python3 -m venv "$cl"
  "$cl/bin/pip" install --quiet --disable-pip-version-check cargo-lambda==1.9.2
fi
export TRIBUTARY_TEST_CARGO_LAMBDA="$cl/bin/cargo-lambda"

# A second Kinesis implementation, kinesalite (npm, pinned), for resharding: moto's SplitShard
# re-puts the parent's records into the children, which real Kinesis never does.
command -v node >/dev/null || { echo "node/npm are needed by the tests (kinesalite)"; exit 1; }
kin="$tools/kinesalite-3.3.3"
if [ ! -d "$kin/node_modules/kinesalite" ]; then
  echo "== installing kinesalite 3.3.3 into $kin"
  mkdir -p "$kin"
  (cd "$kin" && npm install --silent --no-audit --no-fund kinesalite@3.3.3)
fi
kport="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
kin_log="$(mktemp)"
NODE_PATH="$kin/node_modules" node "$root/scripts/kinesalite.js" "$kport" >"$kin_log" 2>&1 &
kin_pid=$!
for _ in $(seq 1 100); do
  grep -q listening "$kin_log" && break
  kill -0 "$kin_pid" 2>/dev/null || { echo "kinesalite failed to start:"; cat "$kin_log"; exit 1; }
  sleep 0.1
done
grep -q listening "$kin_log" || { echo "kinesalite did not start"; cat "$kin_log"; exit 1; }
echo "== Kinesis server 2: kinesalite 3.3.3 on 127.0.0.1:$kport"
export TRIBUTARY_TEST_KINESALITE_ENDPOINT="http://127.0.0.1:$kport"

echo "== fmt"
cargo fmt --all --check
echo "== clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== build (the CLI tests run the real binary)"
cargo build -p tributary --bins
echo "== test"
log="$(mktemp)"
cargo test --workspace 2>&1 | tee "$log"
# One closing line over all test binaries.
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "%d passed, %d failed, %d skipped\n", p, f, i }' "$log"
echo "== fuzz (smoke: fixed seed and run counts; scripts/fuzz.sh SECONDS explores longer)"
bash "$root/scripts/fuzz.sh" smoke
echo "== Trino conformance (tests/tests/integration/trino.rs; docs/sql.md)"
cat "$CARGO_TARGET_DIR/trino-conformance.txt" 2>/dev/null || echo "(no report: the conformance test did not run)"
