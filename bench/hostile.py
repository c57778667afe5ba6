#!/usr/bin/env python3
"""Hostile-input probe of `tributary serve` (not a test; the tests are
tests/tests/integration/hostile.rs): what one token holder can do to the query service, as
figures. A lake of N events; `[query] memory_mb = 512, timeout_secs = 10`, `[server]
concurrency = 2, queue = 16` (the settings of issue 18's probe). Prints, per probe, the
outcome, the slowest `/health` answer meanwhile and the server's RSS.

usage: bench/hostile.sh [--records N] [--binary PATH]
"""
import argparse, json, os, shutil, subprocess, sys, tempfile, threading, time
import urllib.error, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
GEN = os.path.join(HERE, "..", "..", "shared", "bench", "gen_events.py")
TOKEN = "bench-hostile-token"
RUNAWAY = ("SELECT count(*) FROM events a, events b, events c "
           "WHERE a.total_amount + b.total_amount > c.total_amount")


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return 0


def call(addr, method, path, body=None, timeout=120):
    req = urllib.request.Request(f"http://{addr}{path}", method=method,
                                 data=json.dumps(body).encode() if body else None,
                                 headers={"Authorization": f"Bearer {TOKEN}",
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Watch:
    """/health every 100 ms and RSS, until stopped: the slowest answer and the peak."""

    def __init__(self, addr, pid):
        self.addr, self.pid, self.stop = addr, pid, False
        self.slowest, self.peak = 0.0, 0
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            t = time.monotonic()
            try:
                urllib.request.urlopen(f"http://{self.addr}/health", timeout=300).read()
            except Exception:
                pass
            self.slowest = max(self.slowest, time.monotonic() - t)
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except OSError:
                pass
            time.sleep(0.1)

    def end(self):
        self.stop = True
        self.t.join()
        return self.slowest, self.peak


def start(addr, sql):
    st, body = call(addr, "POST", "/v1/queries", {"sql": sql})
    return st, json.loads(body)


def finish(addr, qid, limit=600):
    until = time.monotonic() + limit
    while time.monotonic() < until:
        st, body = call(addr, "GET", f"/v1/queries/{qid}")
        info = json.loads(body)
        if info.get("state") in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return info
        time.sleep(0.05)
    return {"state": "STILL RUNNING"}


def probe(name, addr, pid, fn, rows):
    w = Watch(addr, pid)
    t = time.monotonic()
    outcome = fn()
    secs = time.monotonic() - t
    slowest, peak = w.end()
    rows.append((name, outcome, f"{secs:.1f}", f"{slowest * 1000:.0f}", str(peak), str(rss_mb(pid))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--binary", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", "/var/tmp/tributary-target"), "release", "tributary"))
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="tributary-hostile-")
    with open(os.path.join(work, "tributary.toml"), "w") as f:
        f.write('[project]\nlake = "lake"\n\n[query]\nmemory_mb = 512\ntimeout_secs = 10\n\n'
                '[server]\nconcurrency = 2\nqueue = 16\n\n[pipelines.events]\ntable = "events"\n'
                'source = { type = "file", path = "data/*.ndjson" }\n')
    os.makedirs(os.path.join(work, "schemas"))
    shutil.copy(os.path.join(HERE, "schemas", "events.toml"), os.path.join(work, "schemas"))
    subprocess.run([sys.executable, GEN, "--records", str(a.records), "--files", "4",
                    "--bad-rate", "0", "--seed", "18", "--out", os.path.join(work, "data")],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([a.binary, "--no-progress", "run"], cwd=work, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = subprocess.Popen([a.binary, "serve", "--bind", "127.0.0.1:0", "--flight-bind",
                               "127.0.0.1:0"], cwd=work, env={**os.environ, "TRIBUTARY_TOKEN": TOKEN},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    addr = None
    while addr is None:
        line = server.stderr.readline()
        if line.startswith("query API on http://"):
            addr = line.split("http://")[1].split()[0]
    threading.Thread(target=lambda: server.stderr.read(), daemon=True).start()
    pid, rows = server.pid, []

    def deep():
        st, info = start(addr, "SELECT " + "+".join(["1"] * 2000))
        info = finish(addr, info["query_id"])
        return f"{info['state']}: {(info.get('error') or '')[:60]}"

    def runaway():
        st, info = start(addr, RUNAWAY)
        info = finish(addr, info["query_id"])
        return f"{info['state']} after {info['statistics']['elapsed_ms']} ms"

    big_id = {}

    def big():
        k = max(1, 2_000_000 // a.records)
        st, info = start(addr, "SELECT a.event_id, a.country, b.event_id AS other FROM events a, "
                               f"(SELECT event_id FROM events LIMIT {k}) b")
        info = finish(addr, info["query_id"])
        big_id["id"] = info["query_id"]
        return f"{info['state']}: {info['statistics']['rows']} rows, {info['statistics']['result_bytes'] >> 20} MB file"

    def pages():
        qid, out = big_id["id"], []
        threads = [threading.Thread(target=lambda n=n: out.append(call(
            addr, "GET", f"/v1/queries/{qid}/results?max_results=1&next_token={1000 + n * 7919}")[0]))
            for n in range(4)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        return f"4 one-row pages: {sorted(out)}"

    def joins():
        states = []
        for _ in range(8):
            st, info = start(addr, "SELECT count(*) FROM events a JOIN events b ON a.dt = b.dt "
                                   "JOIN events c ON b.dt = c.dt")
            states.append(finish(addr, info["query_id"])["state"])
        return f"8 joins: {', '.join(sorted(set(states)))}"

    def flood():
        codes = {}
        for _ in range(200):
            st, _ = start(addr, RUNAWAY)
            codes[st] = codes.get(st, 0) + 1
        return f"200 POSTs: {codes}"

    for name, fn in [("2,000-term expression", deep), ("3-way cross join", runaway),
                     ("2 M-row result", big), ("paging it", pages), ("8 big joins", joins),
                     ("flood", flood)]:
        probe(name, addr, pid, fn, rows)
    server.terminate()
    t = time.monotonic()
    try:
        server.wait(timeout=60)
        stop = f"{time.monotonic() - t:.1f} s"
    except subprocess.TimeoutExpired:
        server.kill()
        stop = "ignored for 60 s"
    print(f"lake: {a.records} events; memory_mb 512, timeout 10 s, concurrency 2, queue 16")
    print(f"{'probe':24} {'s':>6} {'max /health ms':>15} {'peak RSS MB':>12} {'RSS after':>10}  outcome")
    for name, outcome, secs, slowest, peak, after in rows:
        print(f"{name:24} {secs:>6} {slowest:>15} {peak:>12} {after:>10}  {outcome}")
    print(f"SIGTERM with runaway queries in flight: stopped in {stop}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
