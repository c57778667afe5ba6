#!/usr/bin/env python3
"""Cold invoke benchmark (not a test): a new `tributary invoke` process per Kinesis batch of
100 records (what a Lambda cold start does: start, read config, open the lake, decode,
write Parquet, commit), timed from process start to exit over N runs; median and p90.
Next to it, the same 100 records written to Parquet by a new DuckDB process.

usage: bench/invoke.sh [--runs N]
"""
import argparse, base64, json, os, shutil, statistics, subprocess, sys, time

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
    print(f"{'cold invoke, 100 records':<44}{'median':>9}{'p90':>9}{'min':>9}")
    print(f"{'tributary invoke (Kinesis batch → commit)':<44}{statistics.median(times)*1000:>7.0f}ms"
          f"{pct(times, 90)*1000:>7.0f}ms{min(times)*1000:>7.0f}ms")
    print(f"{'duckdb (new process → Parquet file)':<44}{statistics.median(duck)*1000:>7.0f}ms"
          f"{pct(duck, 90)*1000:>7.0f}ms{min(duck)*1000:>7.0f}ms")
    print(f"{a.runs} runs each; every tributary run committed a new batch (version {a.runs} at the end).")


if __name__ == "__main__":
    main()
