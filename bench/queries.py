#!/usr/bin/env python3
"""Query benchmark (not a test): the shared Athena-style queries (../shared/bench/queries)
and the project's own (bench/queries: unnest, window functions, point lookups) over the
Tributary-written lake, through `tributary query` and through the HTTP query API
(`tributary serve`), next to DuckDB on the same Parquet files, with answers checked against
../shared/bench/expected and bench/expected (written by DuckDB, checked by hand once).

usage: bench/queries.sh [--runs R]     (builds release, then runs this)
"""
import argparse, csv, json, os, shutil, statistics, subprocess, sys, time, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared", "bench")
OUT = os.path.join(HERE, "out")
TOKEN = "bench-token"


def norm(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "%.2f" % round(v, 2)
    return str(v)


# (queries, expected answers): the shared workload's, then the project's own.
QUERY_SETS = [(os.path.join(SHARED, "queries"), os.path.join(SHARED, "expected")),
              (os.path.join(HERE, "queries"), os.path.join(HERE, "expected"))]


def check(expected, name, cols, rows):
    path = os.path.join(expected, name + ".csv")
    with open(path, newline="") as fh:
        rd = list(csv.reader(fh))
    if rd[0] != cols:
        return f"columns {cols} != {rd[0]}"
    if len(rd) - 1 != len(rows):
        return f"{len(rows)} rows != {len(rd) - 1}"
    for i, (got, want) in enumerate(zip(rows, rd[1:])):
        for g, w in zip(got, want):
            try:
                if abs(float(g) - float(w)) > 0.011:
                    return f"row {i}: {got} != {want}"
            except ValueError:
                if g != w:
                    return f"row {i}: {got} != {want}"
    return None


def api(addr, method, path, body=None):
    req = urllib.request.Request(f"http://{addr}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def via_api(addr, sql, engine_ms=None):
    """Runs sql through the HTTP API; appends the server's engine time to engine_ms."""
    q = api(addr, "POST", "/v1/queries", {"sql": sql})
    while q["state"] in ("QUEUED", "RUNNING"):
        time.sleep(0.005)
        q = api(addr, "GET", f"/v1/queries/{q['query_id']}")
    if q["state"] != "SUCCEEDED":
        raise RuntimeError(q.get("error"))
    if engine_ms is not None:
        engine_ms.append(q["statistics"]["engine_ms"] / 1000)
    rows, cols, token = [], None, None
    while True:
        page = api(addr, "GET", f"/v1/queries/{q['query_id']}/results" + (f"?next_token={token}" if token else ""))
        cols = [c["name"] for c in page["columns"]]
        rows += [[norm(r.get(c)) for c in cols] for r in page["rows"]]
        token = page["next_token"]
        if not token:
            return cols, rows


def via_cli(binary, cfg, sql):
    out = subprocess.run([binary, "--config", cfg, "--no-progress", "query", "--format", "json", "--", sql],
                         capture_output=True, text=True, check=True)
    rows = [json.loads(l) for l in out.stdout.splitlines() if l.strip()]
    cols = list(rows[0].keys()) if rows else []
    return cols, [[norm(r.get(c)) for c in cols] for r in rows]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tributary", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", "/var/tmp/tributary-target"), "release", "tributary"))
    a = ap.parse_args()
    cfg = os.path.join(HERE, "tributary.toml")
    data = os.path.join(OUT, "data")
    if not os.path.exists(os.path.join(data, "manifest.json")):
        subprocess.run([sys.executable, os.path.join(SHARED, "gen_events.py"), "--records", "2000000",
                        "--files", "8", "--seed", "42", "--out", data], check=True)
    # The dimension table as NDJSON, for the customers pipeline.
    cust = os.path.join(OUT, "customers")
    os.makedirs(cust, exist_ok=True)
    with open(os.path.join(data, "customers.csv"), newline="") as fh, \
            open(os.path.join(cust, "customers.ndjson"), "w") as out:
        for r in csv.DictReader(fh):
            out.write(json.dumps({"customer_id": int(r["customer_id"]), "segment": r["segment"],
                                  "signup_date": r["signup_date"]}) + "\n")
    lake = os.path.join(OUT, "lake")
    shutil.rmtree(lake, ignore_errors=True)
    subprocess.run([a.tributary, "--config", cfg, "--no-progress", "run", "events", "customers"],
                   check=True, capture_output=True)

    # DuckDB on the same Parquet files (the events table's Hive folders): its answers checked
    # by the shared runner; its times taken below, interleaved with Tributary's.
    events = os.path.join(lake, "events")
    customers = os.path.join(data, "customers.csv")
    for queries, expected in QUERY_SETS:
        subprocess.run([sys.executable, os.path.join(SHARED, "run_queries.py"), "--engine", "duckdb",
                        "--lake", events, "--customers", customers, "--queries", queries,
                        "--warmup", "0", "--runs", "1", "--check", expected],
                       check=True, capture_output=True)
    sys.path.insert(0, SHARED)
    import run_queries
    duck = run_queries.DuckDB(events, customers, 0)

    env = dict(os.environ, TRIBUTARY_TOKEN=TOKEN)
    server = subprocess.Popen([a.tributary, "--config", cfg, "serve", "--bind", "127.0.0.1:0",
                               "--flight-bind", "127.0.0.1:0"], env=env, stderr=subprocess.PIPE, text=True)
    addr = None
    for line in server.stderr:
        if line.startswith("query API on http://"):
            addr = line.split()[3][len("http://"):]
            break
    try:
        print(f"{'query':<40} {'duckdb':>9} {'engine':>9} {'api':>9} {'cli':>9} {'eng/duck':>9} {'api/duck':>9} {'cli/duck':>9}  answers")
        ratios = {"engine": [], "api": [], "cli": []}
        queries = [(q, f) for q, e in QUERY_SETS for f in sorted(os.listdir(q))]
        for qdir, f in queries:
            if not f.startswith("q") or not f.endswith(".sql"):
                continue
            name = f[:-4]
            expected = dict(QUERY_SETS)[qdir]
            sql = open(os.path.join(qdir, f)).read()
            # Rounds interleave the three ways of running the query (DuckDB, API, CLI), so
            # that the VM's drift over seconds lands on all of them alike.
            duck_sql = sql.strip().rstrip(";")
            cli_res = via_cli(a.tributary, cfg, sql)
            api_res = via_api(addr, sql)
            duck.run(duck_sql)
            times = {"duck": [], "api": [], "cli": []}
            engine = []
            for _ in range(a.runs):
                for way, run in (("duck", lambda: duck.run(duck_sql)),
                                 ("api", lambda: via_api(addr, sql, engine)),
                                 ("cli", lambda: via_cli(a.tributary, cfg, sql))):
                    t = time.perf_counter()
                    run()
                    times[way].append(time.perf_counter() - t)
            t_duck, t_api, t_cli = (statistics.median(times[w]) for w in ("duck", "api", "cli"))
            t_eng = statistics.median(engine)
            bad = check(expected, name, *cli_res) or check(expected, name, *api_res)
            for k, t in (("engine", t_eng), ("api", t_api), ("cli", t_cli)):
                ratios[k].append(max(t, 0.001) / t_duck)
            print(f"{name:<40} {t_duck*1000:>7.0f}ms {t_eng*1000:>7.0f}ms {t_api*1000:>7.0f}ms {t_cli*1000:>7.0f}ms "
                  f"{t_eng/t_duck:>9.2f} {t_api/t_duck:>9.2f} {t_cli/t_duck:>9.2f}  {'ok' if not bad else bad}")
        gm = lambda xs: statistics.geometric_mean(xs)
        print(f"{'geometric mean':<40} {'':>9} {'':>9} {'':>9} {'':>9} "
              f"{gm(ratios['engine']):>9.2f} {gm(ratios['api']):>9.2f} {gm(ratios['cli']):>9.2f}")
        print("duckdb = in-process, planning + execution + materialising to Arrow; engine = the same span"
              " on the Tributary server (statistics.engine_ms);\napi = POST, poll, fetch all pages from a"
              " running server; cli = a new `tributary query` process per query (start-up and lake open"
              " included).")
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
