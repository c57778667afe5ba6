#!/usr/bin/env python3
"""Ingest benchmark: Tributary vs DuckDB on the same input, in the same run.

Generates the shared workload (../shared/bench/gen_events.py, 2 M records in 8 files by
default), then for each run ingests it with `tributary run` (release build) into a fresh
lake and with ../shared/bench/ingest_duckdb.py into a fresh folder, measuring wall time
and peak RSS of each process (wait4 rusage). Prints medians side by side with ratios.

usage: bench/run.py [--records N] [--files K] [--runs R] [--tributary PATH]
"""
import argparse, json, os, shutil, statistics, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "bench")
OUT = os.path.join(HERE, "out")


def measure(cmd, cwd=None):
    """Runs cmd; returns (seconds, peak RSS MiB)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{err}")
    return dt, ru.ru_maxrss / 1024.0


def dir_mb(path):
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total / 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tributary", default=None, help="binary (default: target release build)")
    a = ap.parse_args()

    tributary = a.tributary or os.path.join(
        os.environ.get("CARGO_TARGET_DIR", "/var/tmp/tributary-target"), "release", "tributary")
    data = os.path.join(OUT, "data")
    man_path = os.path.join(data, "manifest.json")
    want = {"records": a.records, "files": a.files, "seed": a.seed}
    have = None
    if os.path.exists(man_path):
        m = json.load(open(man_path))
        have = {k: m["params"][k] for k in want}
    if have != want:
        shutil.rmtree(data, ignore_errors=True)
        print(f"generating {a.records} records in {a.files} files ...", file=sys.stderr)
        subprocess.run([sys.executable, os.path.join(SHARED, "gen_events.py"), "--records", str(a.records),
                        "--files", str(a.files), "--seed", str(a.seed), "--jobs", "2", "--out", data], check=True)
    in_mb = sum(os.path.getsize(os.path.join(data, f)) for f in os.listdir(data) if f.endswith(".ndjson")) / 1e6

    rows = {"tributary": [], "duckdb": []}
    for r in range(a.runs):
        lake = os.path.join(OUT, "lake")
        shutil.rmtree(lake, ignore_errors=True)
        t, rss = measure([tributary, "--no-progress", "--config", os.path.join(HERE, "tributary.toml"), "run", "events"])
        rows["tributary"].append((t, rss, dir_mb(os.path.join(lake, "events"))))
        duck = os.path.join(OUT, "duckdb")
        shutil.rmtree(duck, ignore_errors=True)
        t, rss = measure([sys.executable, os.path.join(SHARED, "ingest_duckdb.py"), data, duck])
        rows["duckdb"].append((t, rss, dir_mb(duck)))
        print(f"run {r + 1}: tributary {rows['tributary'][-1][0]:.2f} s, duckdb {rows['duckdb'][-1][0]:.2f} s",
              file=sys.stderr)

    med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3)) for k, v in rows.items()}
    tr, dk = med["tributary"], med["duckdb"]
    print(f"\ningest {a.records:,} records, {in_mb:.0f} MB NDJSON in {a.files} files -> dt-partitioned zstd Parquet"
          f" (median of {a.runs}, {os.cpu_count()} cores)")
    print(f"{'':<12}{'wall s':>10}{'MB/s':>10}{'peak RSS MiB':>14}{'output MB':>11}")
    for name, (t, rss, mb) in (("tributary", tr), ("duckdb", dk)):
        print(f"{name:<12}{t:>10.2f}{in_mb / t:>10.1f}{rss:>14.0f}{mb:>11.1f}")
    print(f"{'ratio':<12}{tr[0] / dk[0]:>10.2f}{'':>10}{tr[1] / dk[1]:>14.2f}{tr[2] / dk[2]:>11.2f}"
          "   (tributary / duckdb; lower is better)")


if __name__ == "__main__":
    main()
