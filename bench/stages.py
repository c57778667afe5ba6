#!/usr/bin/env python3
"""Split-stage benchmark: the transform stage's throughput by worker count.

Uses the ingest benchmark's input (bench/out/data, made by bench/run.py: 2 M records in 8
files by default; generated here if missing). For each worker count, into a fresh lake:
`tributary run events --stage ingest` stages the input as raw Arrow IPC segments, then
`--stage transform --min-workers W --max-workers W` (timed: decode, transforms, partitioning,
IPC out), then `--stage sink` commits. Next to it, DuckDB with W threads materialises the
same NDJSON with the same columns (its decode step). Medians of --runs.

usage: bench/stages.py [--workers 1,2] [--runs R] [--records N]
"""
import argparse, os, shutil, statistics, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from run import measure, OUT, SHARED  # noqa: E402


def duckdb_decode(data, threads):
    import duckdb
    sys.path.insert(0, SHARED)
    cols = open(os.path.join(SHARED, "ingest_duckdb.py")).read().split('COLUMNS = """')[1].split('"""')[0]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET threads = {threads}")
    t0 = time.perf_counter()
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_json('{data}/*.ndjson', format = 'newline_delimited', columns = {cols})")
    n = con.execute("SELECT count(*) FROM t").fetchone()[0]
    return time.perf_counter() - t0, n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--tributary", default=None)
    a = ap.parse_args()
    tributary = a.tributary or os.path.join(
        os.environ.get("CARGO_TARGET_DIR", "/var/tmp/tributary-target"), "release", "tributary")
    data = os.path.join(OUT, "data")
    if not os.path.exists(os.path.join(data, "manifest.json")):
        subprocess.run([sys.executable, os.path.join(SHARED, "gen_events.py"), "--records", str(a.records),
                        "--files", "8", "--seed", "42", "--jobs", "2", "--out", data], check=True)
    in_mb = sum(os.path.getsize(os.path.join(data, f)) for f in os.listdir(data) if f.endswith(".ndjson")) / 1e6
    lines = sum(1 for f in os.listdir(data) if f.endswith(".ndjson") for _ in open(os.path.join(data, f), "rb"))
    lake = os.path.join(OUT, "stages-lake")
    base = [tributary, "--no-progress", "--config", os.path.join(HERE, "tributary.toml"), "--lake", lake,
            "run", "events", "--stage"]
    rows = []
    for w in [int(x) for x in a.workers.split(",")]:
        ingest, trans, sink, duck = [], [], [], []
        for _ in range(a.runs):
            shutil.rmtree(lake, ignore_errors=True)
            ingest.append(measure(base + ["ingest"])[0])
            trans.append(measure(base + ["transform", "--min-workers", str(w), "--max-workers", str(w)])[0])
            sink.append(measure(base + ["sink"])[0])
            duck.append(duckdb_decode(data, w)[0])
        t, d = statistics.median(trans), statistics.median(duck)
        rows.append((w, statistics.median(ingest), t, statistics.median(sink), lines / t, d, lines / d))
    print(f"\ninput: {lines} lines, {in_mb:.0f} MB NDJSON; {os.cpu_count()} cores; medians of {a.runs} runs")
    print(f"{'workers':>7} {'ingest s':>9} {'transform s':>12} {'sink s':>7} {'transform rec/s':>16} {'vs 1':>6}"
          f" {'duckdb decode s':>16} {'duckdb rec/s':>13}")
    first = rows[0][4]
    for w, i, t, s, r, d, dr in rows:
        print(f"{w:>7} {i:>9.2f} {t:>12.2f} {s:>7.2f} {r:>16,.0f} {r / first:>6.2f} {d:>16.2f} {dr:>13,.0f}")


if __name__ == "__main__":
    main()
