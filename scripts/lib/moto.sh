# Sourced by the test scripts: moto (the S3- and Kinesis-compatible server the tests talk
# to), pinned, in a venv outside the clone reused across runs, started on 127.0.0.1 through
# scripts/moto_server.py (moto with S3's conditional writes made atomic, as real S3's are).
#
#   moto_start [--stock]   installs if needed, starts, waits until it answers; sets
#                          MOTO_PID and exports TRIBUTARY_TEST_AWS_ENDPOINT and test credentials.
#                          --stock: moto's own entry point, without the atomic writes (to show
#                          the race it has; see scripts/stress-commits.sh).

moto_start() {
  local root tools venv port log entry
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  tools="${TRIBUTARY_TOOLS:-/var/tmp/tributary-tools}"
  venv="$tools/moto-5.2.5"
  if [ ! -x "$venv/bin/moto_server" ]; then
    echo "== installing moto 5.2.5 into $venv"
    mkdir -p "$tools"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check moto==5.2.5 flask flask-cors
  fi
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  log="$(mktemp)"
  if [ "${1:-}" = "--stock" ]; then
    "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  else
    "$venv/bin/python" "$root/scripts/moto_server.py" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  fi
  MOTO_PID=$!
  local ok=""
  for _ in $(seq 1 300); do
    if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)" 2>/dev/null; then
      ok=1
      break
    fi
    if ! kill -0 "$MOTO_PID" 2>/dev/null; then
      echo "moto_server failed to start:"; cat "$log"; return 1
    fi
    sleep 0.1
  done
  [ -n "$ok" ] || { echo "moto_server is not answering on 127.0.0.1:$port"; cat "$log"; return 1; }
  rm -f "$log"
  echo "== S3/Kinesis server: moto 5.2.5${1:+ ($1)} on 127.0.0.1:$port"
  export TRIBUTARY_TEST_AWS_ENDPOINT="http://127.0.0.1:$port"
  # Credentials for the local server only (moto accepts any).
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
  export AWS_EC2_METADATA_DISABLED=true
}
