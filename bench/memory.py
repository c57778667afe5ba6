#!/usr/bin/env python3
"""Memory benchmark (not a test): peak RSS of ingesting 1x and 4x the input, Tributary next
to DuckDB in the same run. Backpressure between the stages should keep Tributary's peak flat
as the input grows (the issue's bar: 4x input must not raise peak memory materially).

usage: bench/memory.sh [--records N]   (N = the 1x size, default 1,000,000; 4x = 4N)
"""
import argparse, json, os, shutil, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared", "bench")
OUT = os.path.join(HERE, "out", "memory")
sys.path.insert(0, HERE)
from run import measure  # noqa: E402


def dataset(records, files):
    d = os.path.join(OUT, f"data-{records}")
    man = os.path.join(d, "manifest.json")
    if not os.path.exists(man) or json.load(open(man))["params"]["records"] != records:
        shutil.rmtree(d, ignore_errors=True)
        print(f"generating {records} records ...", file=sys.stderr)
        subprocess.run([sys.executable, os.path.join(SHARED, "gen_events.py"), "--records", str(records),
                        "--files", str(files), "--seed", "42", "--jobs", "2", "--out", d], check=True)
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--tributary", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", "/var/tmp/tributary-target"), "release", "tributary"))
    a = ap.parse_args()
    rows = []
    for scale in (1, 4):
        n = a.records * scale
        data = dataset(n, 4 * scale)
        in_mb = sum(os.path.getsize(os.path.join(data, f)) for f in os.listdir(data) if f.endswith(".ndjson")) / 1e6
        proj = os.path.join(OUT, f"project-{scale}x")
        shutil.rmtree(proj, ignore_errors=True)
        os.makedirs(proj)
        shutil.copytree(os.path.join(HERE, "schemas"), os.path.join(proj, "schemas"))
        with open(os.path.join(proj, "tributary.toml"), "w") as f:
            f.write(f'[project]\nlake = "lake"\n[pipelines.events]\ntable = "events"\n'
                    f'source = {{ type = "file", path = "{data}/*.ndjson" }}\n'
                    f'[pipelines.events.sink]\nflush_rows = 100000000\n')
        t, rss = measure([a.tributary, "--no-progress", "--config", os.path.join(proj, "tributary.toml"), "run"])
        duck_out = os.path.join(proj, "duckdb")
        td, rss_d = measure([sys.executable, os.path.join(SHARED, "ingest_duckdb.py"), data, duck_out])
        rows.append((scale, n, in_mb, t, rss, td, rss_d))
    print(f"{'input':<8}{'records':>11}{'MB':>8}{'tributary s':>13}{'peak MiB':>10}{'duckdb s':>10}{'peak MiB':>10}")
    for scale, n, mb, t, rss, td, rd in rows:
        print(f"{str(scale) + 'x':<8}{n:>11}{mb:>8.0f}{t:>13.2f}{rss:>10.0f}{td:>10.2f}{rd:>10.0f}")
    (_, _, _, _, r1, _, d1), (_, _, _, _, r4, _, d4) = rows
    print(f"peak RSS 4x / 1x: tributary {r4 / r1:.2f}, duckdb {d4 / d1:.2f}")


if __name__ == "__main__":
    main()
