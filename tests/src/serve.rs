//! `tributary serve` as the tests drive it: started on free ports with a token, its HTTP
//! API called over the wire.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::http::request;
use crate::{TempProject, tributary_bin};

/// The bearer token the servers of the tests are started with.
pub const TOKEN: &str = "test-token-9f2c";

pub struct Server {
    child: Child,
    /// The HTTP API's `host:port`.
    pub addr: String,
    /// The Flight SQL endpoint (`grpc://host:port`).
    pub flight: String,
}

/// Hours of work for the query service: a triple self-join of the events table with a
/// filter that keeps rows rarely (the tests cancel it, or let it time out).
pub const RUNAWAY: &str = "SELECT count(*) FROM events a, events b, events c WHERE a.total_amount + b.total_amount > c.total_amount";

/// Resident memory of process `pid`, from /proc (Linux); 0 once it is gone.
pub fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tributary serve` in the project (HTTP and Flight SQL on free ports).
pub fn serve(p: &TempProject) -> Server {
    let mut child = Command::new(tributary_bin())
        .current_dir(p.path())
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--flight-bind",
            "127.0.0.1:0",
        ])
        .env("TRIBUTARY_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut addr, mut flight) = (None, None);
    while addr.is_none() || flight.is_none() {
        let line = lines.next().expect("server output").unwrap();
        assert!(
            !line.contains(TOKEN),
            "the token must never be logged: {line}"
        );
        if let Some(rest) = line.strip_prefix("query API on http://") {
            addr = Some(rest.split_whitespace().next().unwrap().to_string());
        }
        if let Some(rest) = line.strip_prefix("Flight SQL on ") {
            flight = Some(rest.trim().to_string());
        }
    }
    let (addr, flight) = (addr.unwrap(), flight.unwrap());
    // Keep draining stderr, checking the token never shows up.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            assert!(
                !line.contains(TOKEN),
                "the token must never be logged: {line}"
            );
        }
    });
    Server {
        child,
        addr,
        flight,
    }
}

pub fn call(s: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let r = request(&s.addr, method, path, Some(TOKEN), body.as_ref());
    (r.status, r.json())
}

pub fn start(s: &Server, sql: &str) -> String {
    let (st, v) = call(s, "POST", "/v1/queries", Some(json!({ "sql": sql })));
    assert_eq!(st, 200, "{v}");
    v["query_id"].as_str().unwrap().to_string()
}

pub fn wait(s: &Server, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (st, v) = call(s, "GET", &format!("/v1/queries/{id}"), None);
        assert_eq!(st, 200, "{v}");
        if ["SUCCEEDED", "FAILED", "CANCELLED"].contains(&v["state"].as_str().unwrap()) {
            return v;
        }
        assert!(Instant::now() < deadline, "query {id} did not finish: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a `tests/python/` driver against the server's Flight SQL endpoint with the token,
/// in the test command's Python (`TRIBUTARY_TEST_PYTHON`, with the ADBC driver), and returns
/// the JSON object it prints.
pub fn python_driver(s: &Server, script: &str) -> Value {
    let python = std::env::var("TRIBUTARY_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("TRIBUTARY_TEST_PYTHON is not set: run the tests with `bash scripts/test.sh`, which installs the ADBC driver")
    });
    let out = Command::new(python)
        .arg(crate::repo_root().join("tests/python").join(script))
        .arg(&s.flight)
        .arg(TOKEN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
