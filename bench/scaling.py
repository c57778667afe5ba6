#!/usr/bin/env python3
"""Scaling benchmark (not a test): ingest time and peak RSS at 1x and 4x the input
(2 M and 8 M records by default), and at 1 and 2 workers, Tributary next to DuckDB in the
same run. Medians of --runs.

  flat memory:  peak RSS at 4x within 1.2x of 1x
  linear time:  wall time at 4x within 4.4x of 1x
  workers:      throughput on 2 cores at least 1.7x that on 1 (each tool pinned with taskset
                to 1 or 2 cores and told to use as many: Tributary's parallelism, DuckDB's
                threads — a Tributary "worker" count alone is not a core count: its reader
                and Parquet writers run beside the decode workers)

usage: bench/scaling.sh [--records N] [--runs R]   (N = the 1x size, default 2,000,000)
"""
import argparse, json, os, shutil, statistics, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared", "bench")
OUT = os.path.join(HERE, "out", "scaling")
sys.path.insert(0, HERE)
from run import measure  # noqa: E402


def dataset(records, files):
    """The shared workload at this size (bench/out/data is the default 2 M one)."""
    d = os.path.join(HERE, "out", "data" if records == 2_000_000 and files == 8 else f"data-{records}")
    man = os.path.join(d, "manifest.json")
    if not os.path.exists(man) or json.load(open(man))["params"]["records"] != records:
        shutil.rmtree(d, ignore_errors=True)
        print(f"generating {records} records ...", file=sys.stderr)
        subprocess.run([sys.executable, os.path.join(SHARED, "gen_events.py"), "--records", str(records),
                        "--files", str(files), "--seed", "42", "--jobs", "2", "--out", d], check=True)
    return d


def pinned(cmd, cores):
    """cmd on the first `cores` CPUs (all of them when cores is 0)."""
    return (["taskset", "-c", ",".join(str(c) for c in range(cores))] + cmd) if cores else cmd


def tributary_run(binary, data, workers, name):
    """One ingest into a fresh lake: (seconds, peak MiB)."""
    proj = os.path.join(OUT, name)
    shutil.rmtree(proj, ignore_errors=True)
    os.makedirs(proj)
    shutil.copytree(os.path.join(HERE, "schemas"), os.path.join(proj, "schemas"))
    with open(os.path.join(proj, "tributary.toml"), "w") as f:
        f.write(f'[project]\nlake = "lake"\n[pipelines.events]\ntable = "events"\n'
                f'source = {{ type = "file", path = "{data}/*.ndjson" }}\n'
                + (f"parallelism = {workers}\n" if workers else "")
                + '[pipelines.events.sink]\nflush_rows = 100000000\n')
    r = measure(pinned([binary, "--no-progress", "--config", os.path.join(proj, "tributary.toml"), "run"], workers))
    shutil.rmtree(proj, ignore_errors=True)
    return r


def duckdb_run(data, threads, name):
    out = os.path.join(OUT, name + "-duckdb")
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, os.path.join(SHARED, "ingest_duckdb.py"), data, out]
    if threads:
        cmd += ["--threads", str(threads)]
    r = measure(pinned(cmd, threads))
    shutil.rmtree(out, ignore_errors=True)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tributary", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", "/var/tmp/tributary-target"), "release", "tributary"))
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    small = dataset(a.records, 8)
    large = dataset(a.records * 4, 32)
    cases = [("1x", small, 0), ("4x", large, 0), ("1x-1core", small, 1), ("1x-2cores", small, 2)]
    # Rounds of every case, not every round of one case: this VM's speed drifts over
    # minutes, and a ratio of two cases run minutes apart measured the drift.
    runs = {name: ([], []) for name, _, _ in cases}
    for r in range(a.runs):
        for name, data, workers in cases:
            t, d = runs[name]
            t.append(tributary_run(a.tributary, data, workers, name))
            d.append(duckdb_run(data, workers, name))
            print(f"round {r + 1} {name}: tributary {t[-1][0]:.2f} s {t[-1][1]:.0f} MiB, "
                  f"duckdb {d[-1][0]:.2f} s {d[-1][1]:.0f} MiB", file=sys.stderr)
    med = {name: tuple(statistics.median(x[i] for x in v) for v in runs[name] for i in (0, 1))
           for name in runs}

    print(f"\ningest scaling, medians of {a.runs} ({os.cpu_count()} cores)")
    print(f"{'case':<14}{'records':>11}{'tributary s':>13}{'peak MiB':>10}{'duckdb s':>10}{'peak MiB':>10}")
    for name, data, _ in cases:
        n = a.records * (4 if name == "4x" else 1)
        tt, tr, dt, dr = med[name]
        print(f"{name:<14}{n:>11,}{tt:>13.2f}{tr:>10.0f}{dt:>10.2f}{dr:>10.0f}")
    t1, r1, d1, dr1 = med["1x"]
    t4, r4, d4, dr4 = med["4x"]
    w1, _, dw1, _ = med["1x-1core"]
    w2, _, dw2, _ = med["1x-2cores"]
    print(f"peak RSS 4x / 1x:          tributary {r4 / r1:.2f}   duckdb {dr4 / dr1:.2f}   (target <= 1.2)")
    print(f"wall time 4x / 1x:         tributary {t4 / t1:.2f}   duckdb {d4 / d1:.2f}   (target <= 4.4)")
    print(f"throughput 2 / 1 cores:    tributary {w1 / w2:.2f}   duckdb {dw1 / dw2:.2f}   (target >= 1.7)")

    def rounds(num, den, i, tool=0):
        return " ".join(f"{x[i] / y[i]:.2f}" for x, y in zip(runs[num][tool], runs[den][tool]))

    print("per round (tributary / duckdb):")
    print(f"  peak RSS 4x / 1x        {rounds('4x', '1x', 1)}  /  {rounds('4x', '1x', 1, 1)}")
    print(f"  wall time 4x / 1x       {rounds('4x', '1x', 0)}  /  {rounds('4x', '1x', 0, 1)}")
    print(f"  throughput 2 / 1 cores  {rounds('1x-1core', '1x-2cores', 0)}  /  "
          f"{rounds('1x-1core', '1x-2cores', 0, 1)}")


if __name__ == "__main__":
    main()
