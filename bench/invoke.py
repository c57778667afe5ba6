#!/usr/bin/env python3
"""Cold invoke benchmark (not a test): a new `tributary invoke` process per Kinesis batch of
100 records (what a Lambda cold start does: start, read config, open the lake, decode,
write Parquet, commit), timed from process start to exit over N runs; median and p90.
Next to it, the same 100 records written to Parquet by a new DuckDB process. Then the
deployed shape: `bootstrap` (the same binary) under a real Lambda Runtime API (cargo-lambda's
emulator), timed from process start to the first answered invocation (a cold start: init +
one batch) and for the next invocation on the same process (warm).

usage: bench/invoke.sh [--runs N]
"""
import argparse, base64, json, os, shutil, socket, statistics, subprocess, sys, tempfile, time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "out", "invoke")


def record(i):
    return {"event_id": f"inv-{i:08d}", "event_time": "2024-06-01T10:00:00Z", "customer_id": i % 5000,
            "country": "DE", "device": "web", "items": [{"sku": "SKU-1", "qty": 1, "price": 9.5}],
            "total_amount": 9.5, "status": "paid", "shipping": None}


def event(batch, size=100):
    recs = []
    for k in range(size):
        i = batch * size + k
        seq = "4959033827149025660855969253836157109592157598913%09d" % i
        recs.append({"kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": str(i), "sequenceNumber": seq,
                                 "data": base64.b64encode(json.dumps(record(i)).encode()).decode(),
                                 "approximateArrivalTimestamp": 1764244800.0},
                     "eventSource": "aws:kinesis", "eventVersion": "1.0",
                     "eventID": f"shardId-000000000000:{seq}", "eventName": "aws:kinesis:record",
                     "invokeIdentityArn": "arn:aws:iam::123456789012:role/bench", "awsRegion": "us-east-1",
                     "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/bench"})
    return {"Records": recs}


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=25)
    ap.add_argument("--tributary", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", "/var/tmp/tributary-target"), "release", "tributary"))
    ap.add_argument("--cargo-lambda", default=os.path.join(HERE, "out", "venv", "bin", "cargo-lambda"))
    a = ap.parse_args()
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(os.path.join(OUT, "schemas"))
    shutil.copy(os.path.join(HERE, "schemas", "events.toml"), os.path.join(OUT, "schemas"))
    with open(os.path.join(OUT, "tributary.toml"), "w") as f:
        f.write('[project]\nlake = "lake"\n[pipelines.events]\ntable = "events"\n'
                'source = { type = "kinesis", stream = "bench" }\n')
    times = []
    for b in range(a.runs):
        path = os.path.join(OUT, "event.json")
        json.dump(event(b), open(path, "w"))
        t = time.perf_counter()
        p = subprocess.run([a.tributary, "--no-progress", "invoke", "--event", path], cwd=OUT,
                           capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        ans = json.loads(p.stdout or "null")
        if p.returncode != 0 or not ans or ans.get("batchItemFailures") != [] or ans.get("records_written") != 100:
            sys.exit(f"invoke failed: {p.stdout}{p.stderr}")
    # The peer: a new DuckDB process writing the same 100 records to Parquet.
    duck = []
    rows = os.path.join(OUT, "rows.ndjson")
    with open(rows, "w") as f:
        for i in range(100):
            f.write(json.dumps(record(i)) + "\n")
    code = ("import duckdb,sys; duckdb.sql(\"COPY (SELECT * FROM read_json_auto('%s')) TO '%s' (FORMAT PARQUET)\")"
            % (rows, os.path.join(OUT, "duck.parquet")))
    for _ in range(a.runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        duck.append(time.perf_counter() - t)
    cold, warm = runtime_api(a, OUT)
    print(f"{'cold invoke, 100 records':<44}{'median':>9}{'p90':>9}{'min':>9}")
    print(f"{'tributary invoke (Kinesis batch → commit)':<44}{statistics.median(times)*1000:>7.0f}ms"
          f"{pct(times, 90)*1000:>7.0f}ms{min(times)*1000:>7.0f}ms")
    print(f"{'duckdb (new process → Parquet file)':<44}{statistics.median(duck)*1000:>7.0f}ms"
          f"{pct(duck, 90)*1000:>7.0f}ms{min(duck)*1000:>7.0f}ms")
    print(f"{'bootstrap, Runtime API: start → 1st answer':<44}{statistics.median(cold)*1000:>7.0f}ms"
          f"{pct(cold, 90)*1000:>7.0f}ms{min(cold)*1000:>7.0f}ms")
    print(f"{'bootstrap, Runtime API: next invocation':<44}{statistics.median(warm)*1000:>7.0f}ms"
          f"{pct(warm, 90)*1000:>7.0f}ms{min(warm)*1000:>7.0f}ms")
    print(f"{a.runs} runs each; every tributary run committed a new batch.")


def runtime_api(a, out):
    """Cold and warm invocation times of `bootstrap` under cargo-lambda's Runtime API."""
    emu_dir = tempfile.mkdtemp()
    os.makedirs(os.path.join(emu_dir, "src"))
    open(os.path.join(emu_dir, "Cargo.toml"), "w").write(
        '[package]\nname = "emulator"\nversion = "0.0.0"\nedition = "2021"\n[workspace]\n')
    open(os.path.join(emu_dir, "src", "main.rs"), "w").write("fn main() {}\n")
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    emu = subprocess.Popen([a.cargo_lambda, "lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1",
                            "-P", str(port)], cwd=emu_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        boot = os.path.join(out, "bootstrap")
        if not os.path.exists(boot):
            os.symlink(os.path.abspath(a.tributary), boot)
        env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f"http://127.0.0.1:{port}/.rt",
                   AWS_LAMBDA_FUNCTION_NAME="_", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="1024",
                   AWS_LAMBDA_FUNCTION_VERSION="1", LAMBDA_TASK_ROOT=out)
        url = f"http://127.0.0.1:{port}/2015-03-31/functions/_/invocations"

        def invoke(batch):
            req = urllib.request.Request(url, data=json.dumps(event(batch)).encode(), method="POST")
            ans = json.loads(urllib.request.urlopen(req, timeout=60).read())
            if ans.get("batchItemFailures") != [] or ans.get("records_written") != 100:
                sys.exit(f"invocation failed: {ans}")

        cold, warm = [], []
        for r in range(a.runs):
            t = time.perf_counter()
            fn = subprocess.Popen([boot], cwd=out, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            invoke(1000 + 2 * r)
            cold.append(time.perf_counter() - t)
            t = time.perf_counter()
            invoke(1001 + 2 * r)
            warm.append(time.perf_counter() - t)
            fn.kill(); fn.wait()
        return cold, warm
    finally:
        emu.kill(); emu.wait()
        shutil.rmtree(emu_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
