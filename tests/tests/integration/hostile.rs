//! The query service under hostile input: what one token holder can try against
//! `tributary serve` (HTTP and Flight SQL), `tributary query` and the Lambda handlers, each
//! with its expected refusal — while the server keeps answering `/health` within a second,
//! its memory stays under a stated bound, and the lake is not changed (SECURITY.md).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tributary_tests::http::request;
use tributary_tests::serve::{
    RUNAWAY, Server, TOKEN, call, python_driver, rss_bytes, serve, start, wait,
};
use tributary_tests::{TempProject, cli, output_text};

fn chain(op: &str, term: &str, n: usize) -> String {
    vec![term; n].join(op)
}

fn project(server: &str) -> TempProject {
    project_with("memory_mb = 256\ntimeout_secs = 4", server)
}

/// `project` with these `[query]` settings.
fn project_with(query: &str, server: &str) -> TempProject {
    let p = TempProject::new(
        &format!(
            "[project]\nlake = \"lake\"\n\n[query]\n{query}\n\n[server]\n{server}\n\n[pipelines.events]\ntable = \"events\"\nsource = {{ type = \"file\", path = \"data/*.ndjson\" }}\n"
        ),
        &[("events", tributary_tests::EVENTS_SCHEMA)],
    );
    p.gen_events(2000, 1, 0.0, 18);
    p
}

/// Every file of the lake's tables with its size: what "the lake is unchanged" compares.
fn lake_files(p: &TempProject) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![p.path().join("lake")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = e.path();
            if path.ends_with("_tributary") {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.display().to_string(), e.metadata().unwrap().len()));
            }
        }
    }
    out.sort();
    out
}

/// Checks `/health` every 100 ms while alive; records the slowest answer and RSS's peak.
struct Watch {
    stop: Arc<AtomicBool>,
    slowest_ms: Arc<AtomicU64>,
    peak_rss: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watch {
    fn start(s: &Server) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let slowest_ms = Arc::new(AtomicU64::new(0));
        let peak_rss = Arc::new(AtomicU64::new(0));
        let (addr, pid) = (s.addr.clone(), s.pid());
        let thread = std::thread::spawn({
            let (stop, slowest_ms, peak_rss) = (stop.clone(), slowest_ms.clone(), peak_rss.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let r = request(&addr, "GET", "/health", None, None);
                    assert_eq!(r.status, 200);
                    slowest_ms.fetch_max(t.elapsed().as_millis() as u64, Ordering::Relaxed);
                    peak_rss.fetch_max(rss_bytes(pid), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        });
        Self {
            stop,
            slowest_ms,
            peak_rss,
            thread: Some(thread),
        }
    }

    /// Stops watching; the slowest `/health` answer and the peak RSS seen.
    fn finish(mut self) -> (Duration, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("/health answered every time");
        }
        (
            Duration::from_millis(self.slowest_ms.load(Ordering::Relaxed)),
            self.peak_rss.load(Ordering::Relaxed),
        )
    }
}

fn failed_with(s: &Server, sql: &str, needle: &str) {
    let id = start(s, sql);
    let done = wait(s, &id);
    assert_eq!(done["state"], "FAILED", "{sql}: {done}");
    let e = done["error"].as_str().unwrap_or_default();
    assert!(e.contains(needle), "{sql}: wanted `{needle}` in: {e}");
}

/// Sends `head` as raw bytes and returns the status line's code.
fn raw(addr: &str, head: &str) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_queries_are_refused_and_the_server_stays_up() {
    let p = project("concurrency = 1\nqueue = 2");
    p.run().await;
    let before = lake_files(&p);
    let mut s = serve(&p);
    let watch = Watch::start(&s);

    // 1. Deep expressions: 2,000 terms (which aborted the server) and 30,000 are refused
    //    with the limit; a few hundred are answered (planning runs on the query threads).
    let id = start(&s, &format!("SELECT {}", chain("+", "1", 300)));
    let done = wait(&s, &id);
    assert_eq!(done["state"], "SUCCEEDED", "{done}");
    let id = start(&s, &format!("SELECT {} AS s", chain(" || ", "'a'", 300)));
    assert_eq!(wait(&s, &id)["state"], "SUCCEEDED");
    for terms in [2000, 30_000] {
        failed_with(
            &s,
            &format!("SELECT {}", chain("+", "1", terms)),
            "nest more than 1000 levels",
        );
        failed_with(
            &s,
            &format!("SELECT {} AS s", chain(" || ", "'a'", terms)),
            "nest more than 1000 levels",
        );
    }
    // Text over 256 KB is refused before it is stored.
    let (st, v) = call(
        &s,
        "POST",
        "/v1/queries",
        Some(json!({ "sql": format!("SELECT 1 -- {}", "x".repeat(300 * 1024)) })),
    );
    assert_eq!(st, 400, "{v}");

    // 4. Time travel reads lake tables only.
    let abs = p.path().join("lake/events");
    for sql in [
        format!("SELECT count(*) FROM table_version('{}', 0)", abs.display()),
        "SELECT count(*) FROM table_at('../outside/t', '2026-01-01T00:00:00Z')".to_string(),
    ] {
        failed_with(&s, &sql, "is not a table name");
    }

    // 2 + 5. A runaway query is cancelled on time; while it runs the queue holds two more,
    //    and the next is refused at once with 429.
    let runaway = start(&s, RUNAWAY);
    let queued: Vec<String> = (0..2).map(|_| start(&s, "SELECT 1")).collect();
    let r = request(
        &s.addr,
        "POST",
        "/v1/queries",
        Some(TOKEN),
        Some(&json!({ "sql": "SELECT 2" })),
    );
    assert_eq!(r.status, 429, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("retry-after"), Some("1"));
    let done = wait(&s, &runaway);
    assert_eq!(done["state"], "FAILED", "{done}");
    assert!(
        done["error"]
            .as_str()
            .unwrap_or_default()
            .contains("query.timeout_secs"),
        "{done}"
    );
    // The timeout fires on time (4 s), not after the join yields: loose, for busy machines.
    let elapsed = done["statistics"]["elapsed_ms"]
        .as_u64()
        .unwrap_or(u64::MAX);
    assert!(elapsed < 12_000, "cancelled after {elapsed} ms");
    for id in queued {
        assert_eq!(wait(&s, &id)["state"], "SUCCEEDED");
    }

    // 3. A large result is written to its file as it comes, and a page reads one batch:
    //    RSS stays under a bound well below the result's size in memory.
    let big = "SELECT a.event_id, b.event_id AS other FROM events a, (SELECT event_id FROM events LIMIT 600) b";
    let id = start(&s, big);
    let done = wait(&s, &id);
    assert_eq!(done["state"], "SUCCEEDED", "{done}");
    assert_eq!(done["statistics"]["rows"], 1_200_000);
    let r = request(
        &s.addr,
        "GET",
        &format!("/v1/queries/{id}/results?max_results=1&next_token=1199990"),
        Some(TOKEN),
        None,
    );
    assert_eq!(r.status, 200);
    let page = r.json();
    assert_eq!(page["rows"].as_array().map(|r| r.len()), Some(1));
    assert_eq!(page["total_rows"], 1_200_000);
    // 8. Results are never cached or sniffed.
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));

    let (slowest, peak) = watch.finish();
    assert!(slowest < Duration::from_secs(1), "/health took {slowest:?}");
    // The result is ~90 MB as Arrow and ~200 MB as JSON; held whole (as before) with its
    // copies it took the server well past 400 MB.
    assert!(peak < 400 << 20, "peak RSS {} MB", peak >> 20);
    assert!(!s.exited());
    assert_eq!(lake_files(&p), before, "the lake changed");

    // SIGTERM stops the server while a runaway query holds the query threads.
    let runaway = start(&s, RUNAWAY);
    while call(&s, "GET", &format!("/v1/queries/{runaway}"), None).1["state"] != "RUNNING" {
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &s.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !s.exited() {
        assert!(Instant::now() < deadline, "SIGTERM was ignored for 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "hostile: slowest /health {} ms, peak RSS {} MB",
        slowest.as_millis(),
        peak >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_that_panics_fails_and_the_server_runs_on() {
    // Building 2 GB of string takes a debug build a while.
    let p = project_with("memory_mb = 256\ntimeout_secs = 300", "");
    p.run().await;
    let mut s = serve(&p);
    // 6. 2,000 rows of 100 MB overflow a string array's 32-bit offsets: arrow panics (after
    //    ~2 GB, outside the memory pool's sight). The query ends FAILED with the panic.
    failed_with(
        &s,
        "SELECT lpad('x', 100000000, 'x') FROM events",
        "failed inside the engine",
    );
    assert!(!s.exited());
    let id = start(&s, "SELECT count(*) FROM events");
    assert_eq!(wait(&s, &id)["state"], "SUCCEEDED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_hygiene_and_retention() {
    let p = project("results_retention_hours = 0.001\nhistory_retention_days = 0.00005");
    p.run().await;
    let s = serve(&p);

    // 8. The scheme is case-insensitive; the token is exact.
    let head = |auth: &str| {
        format!(
            "GET /v1/queries HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {auth}\r\n\r\n"
        )
    };
    assert_eq!(raw(&s.addr, &head(&format!("bearer {TOKEN}"))), 200);
    assert_eq!(raw(&s.addr, &head(&format!("BEARER {TOKEN}"))), 200);
    assert_eq!(raw(&s.addr, &head(&format!("Bearer  {TOKEN}"))), 403);
    assert_eq!(raw(&s.addr, &head(&format!("Bearer {TOKEN}x"))), 403);
    assert_eq!(raw(&s.addr, &head(&format!("Bearer\t{TOKEN}"))), 401);

    // A header trickled a byte at a time is cut off (10 s), not held open.
    let mut slow = TcpStream::connect(&s.addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let started = Instant::now();
    let mut closed = false;
    for b in b"GET /health HTTP/1.1\r\nX-Slow: ".iter().cycle() {
        if slow.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        match slow.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => {
                closed = true;
                break;
            }
            Err(_) => {}
        }
        if started.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    assert!(closed, "a trickled header held the connection for 60 s");

    // 9. Results and history expire; only their owner can read them meanwhile.
    let id = start(&s, "SELECT count(*) FROM events");
    assert_eq!(wait(&s, &id)["state"], "SUCCEEDED");
    let results = p.path().join(format!("lake/_tributary/results/{id}.arrow"));
    let history = p.path().join(format!("lake/_tributary/queries/{id}.json"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in [&results, &history] {
            if let Ok(m) = std::fs::metadata(f) {
                assert_eq!(m.permissions().mode() & 0o077, 0, "{}", f.display());
            }
        }
        let dir = std::fs::metadata(p.path().join("lake/_tributary/results")).unwrap();
        assert_eq!(dir.permissions().mode() & 0o777, 0o700);
    }
    // Expiry runs every second here (3.6 s results, 4.3 s history).
    let deadline = Instant::now() + Duration::from_secs(120);
    while results.exists() || history.exists() {
        assert!(Instant::now() < deadline, "results and history were kept");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (st, _) = call(&s, "GET", &format!("/v1/queries/{id}"), None);
    assert_eq!(st, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flight_sql_shares_the_limits() {
    let p = project("concurrency = 1\nqueue = 0");
    p.run().await;
    let s = serve(&p);
    // The HTTP API's runaway holds the one slot with no queue: Flight SQL is refused with
    // RESOURCE_EXHAUSTED; a 2,000-term prepared statement (it aborted the server) is refused
    // with the depth limit.
    let runaway = start(&s, RUNAWAY);
    let v = python_driver(&s, "hostile_flight.py");
    assert!(
        v["deep_error"]
            .as_str()
            .unwrap_or_default()
            .contains("nest more than 1000"),
        "{v}"
    );
    assert!(
        v["busy_error"]
            .as_str()
            .unwrap_or_default()
            .contains("busy"),
        "{v}"
    );
    call(&s, "DELETE", &format!("/v1/queries/{runaway}"), None);
    let v = python_driver(&s, "hostile_flight.py");
    assert_eq!(v["busy_error"], serde_json::Value::Null, "{v}");
    assert_eq!(v["answer"], 300, "{v}");
}

#[test]
fn the_cli_survives_deep_and_runaway_queries() {
    let p = project("");
    let out = cli(&p, &["run"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let out = cli(
        &p,
        &["query", &format!("SELECT {} AS n", chain("+", "1", 300))],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(output_text(&out).contains("300"));
    let out = cli(
        &p,
        &["query", &format!("SELECT {} AS n", chain("+", "1", 2000))],
    );
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("nest more than 1000 levels"),
        "{}",
        output_text(&out)
    );
    // The timeout ends the process (4 s from the config), not the join's next yield.
    let started = Instant::now();
    let out = cli(&p, &["query", RUNAWAY]);
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("query.timeout_secs"),
        "{}",
        output_text(&out)
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}
