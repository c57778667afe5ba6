//! A fault-injecting HTTP proxy in front of a real test server (neither local server fails
//! by itself). It forwards requests, but answers chosen ones with a fault, in rotation:
//! Kinesis throttling (`ProvisionedThroughputExceededException`), S3 `503 SlowDown`, `500`,
//! a dropped connection (closed before the request reaches the server, so a retry is safe),
//! or added latency. It can also play dead (every request a 500) until told otherwise.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Kinesis `ProvisionedThroughputExceededException` (HTTP 400).
    Throttle,
    /// Kinesis `ExpiredIteratorException` (HTTP 400): the reader must get a new iterator.
    ExpiredIterator,
    /// S3 `503 SlowDown`.
    SlowDown,
    /// HTTP 500 (`InternalFailure` / `InternalError`).
    ServerError,
    /// The connection closes with no answer.
    Drop,
    /// The request is forwarded after this many milliseconds.
    Delay(u64),
    /// The request is forwarded and applied, but its answer never arrives (the connection
    /// closes): the client cannot tell whether it took effect.
    LostAck,
}

/// Counts of what the proxy did.
#[derive(Debug, Default)]
pub struct FaultStats {
    pub requests: AtomicU64,
    pub injected: Arc<AtomicU64>,
    pub throttled: AtomicU64,
    pub expired: AtomicU64,
    pub slow_down: AtomicU64,
    pub server_errors: AtomicU64,
    pub dropped: AtomicU64,
    pub delayed: AtomicU64,
    pub acks_lost: AtomicU64,
    /// Requests that arrived while the proxy played dead.
    pub while_dead: AtomicU64,
}

impl FaultStats {
    pub fn summary(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "{} requests, {} faults injected ({} throttled, {} expired iterators, {} SlowDown, {} 500s, {} dropped, {} delayed, {} acks lost), {} while dead",
            g(&self.requests),
            g(&self.injected),
            g(&self.throttled),
            g(&self.expired),
            g(&self.slow_down),
            g(&self.server_errors),
            g(&self.dropped),
            g(&self.delayed),
            g(&self.acks_lost),
            g(&self.while_dead)
        )
    }
}

pub struct ChaosProxy {
    pub endpoint: String,
    pub stats: Arc<FaultStats>,
    dead: Arc<AtomicBool>,
    enabled: Arc<AtomicBool>,
}

struct Plan {
    upstream: String,
    /// Kinesis operations (X-Amz-Target) or HTTP methods (S3) that get faults; empty: all.
    operations: Vec<String>,
    /// Only requests whose path holds this get faults.
    path: Option<String>,
    faults: Vec<Fault>,
    every: u64,
    seen: AtomicU64,
    stats: Arc<FaultStats>,
    dead: Arc<AtomicBool>,
    enabled: Arc<AtomicBool>,
}

impl ChaosProxy {
    /// Proxies to `upstream` (`http://host:port`); every `every`-th request matching
    /// `operations` gets the next of `faults`.
    pub fn start(upstream: &str, operations: &[&str], faults: &[Fault], every: u64) -> Self {
        Self::start_on_paths(upstream, operations, None, faults, every)
    }

    /// As `start`, for requests whose path holds `path` only (say, `/_delta_log/`).
    pub fn start_on_paths(
        upstream: &str,
        operations: &[&str],
        path: Option<&str>,
        faults: &[Fault],
        every: u64,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let stats = Arc::new(FaultStats::default());
        let dead = Arc::new(AtomicBool::new(false));
        let enabled = Arc::new(AtomicBool::new(true));
        let plan = Arc::new(Plan {
            upstream: upstream.trim_start_matches("http://").to_string(),
            operations: operations.iter().map(|s| s.to_ascii_lowercase()).collect(),
            path: path.map(str::to_string),
            faults: faults.to_vec(),
            every: every.max(1),
            seen: AtomicU64::new(0),
            stats: stats.clone(),
            dead: dead.clone(),
            enabled: enabled.clone(),
        });
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let plan = plan.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &plan);
                });
            }
        });
        Self {
            endpoint,
            stats,
            dead,
            enabled,
        }
    }

    /// Every request answered with a 500 (a dead dependency) while `dead`.
    pub fn set_dead(&self, dead: bool) {
        self.dead.store(dead, Ordering::Relaxed);
    }

    /// Stops (or resumes) injecting faults; requests are forwarded as they are.
    pub fn set_faults(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }
}

/// The throttling-only proxy of the first Kinesis tests.
pub struct FaultProxy {
    pub endpoint: String,
    /// Requests answered with an injected error so far.
    pub injected: Arc<AtomicU64>,
    _proxy: ChaosProxy,
}

impl FaultProxy {
    /// Every `every`-th request whose `X-Amz-Target` names one of `operations` is answered
    /// with `ProvisionedThroughputExceededException`.
    pub fn start(upstream: &str, operations: &[&str], every: u64) -> Self {
        let proxy = ChaosProxy::start(upstream, operations, &[Fault::Throttle], every);
        Self {
            endpoint: proxy.endpoint.clone(),
            injected: proxy.stats.injected.clone(),
            _proxy: proxy,
        }
    }
}

fn respond(
    client: &mut TcpStream,
    status: &str,
    kinesis: bool,
    code: &str,
    msg: &str,
) -> std::io::Result<()> {
    let (ctype, body) = if kinesis {
        (
            "application/x-amz-json-1.1",
            format!("{{\"__type\":\"{code}\",\"message\":\"{msg} (injected by the test proxy)\"}}"),
        )
    } else {
        (
            "application/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{msg} (injected by the test proxy)</Message></Error>"
            ),
        )
    };
    write!(
        client,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nx-amzn-ErrorType: {code}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// One client connection: one request, forwarded on a fresh upstream connection or answered
/// with a fault (then the connection closes, as the upstream's answer would).
fn serve(client: TcpStream, plan: &Plan) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut client = client;
    let mut head = Vec::new();
    let mut length = 0usize;
    let mut target = String::new();
    let mut method = String::new();
    let mut path = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if method.is_empty() {
            let mut words = line.split_whitespace();
            method = words.next().unwrap_or("").to_ascii_lowercase();
            path = words.next().unwrap_or("").to_string();
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if let Some(v) = lower.strip_prefix("x-amz-target:") {
            target = v.trim().to_string();
        }
        if lower.starts_with("connection:") {
            continue;
        }
        if line == "\r\n" {
            head.extend_from_slice(b"Connection: close\r\n\r\n");
            break;
        }
        head.extend_from_slice(line.as_bytes());
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let s = &plan.stats;
    s.requests.fetch_add(1, Ordering::Relaxed);
    let kinesis = !target.is_empty();
    if plan.dead.load(Ordering::Relaxed) {
        s.while_dead.fetch_add(1, Ordering::Relaxed);
        s.server_errors.fetch_add(1, Ordering::Relaxed);
        return respond(
            &mut client,
            "500 Internal Server Error",
            kinesis,
            if kinesis {
                "InternalFailure"
            } else {
                "InternalError"
            },
            "service unavailable",
        );
    }
    let op = if kinesis {
        target.rsplit('.').next().unwrap_or("").to_string()
    } else {
        method.clone()
    };
    let matches = (plan.operations.is_empty() || plan.operations.contains(&op))
        && plan.path.as_ref().is_none_or(|p| path.contains(p.as_str()));
    let mut lose_ack = false;
    if matches && plan.enabled.load(Ordering::Relaxed) && !plan.faults.is_empty() {
        let n = plan.seen.fetch_add(1, Ordering::Relaxed);
        if n % plan.every == plan.every - 1 {
            let fault = plan.faults[((n / plan.every) as usize) % plan.faults.len()];
            s.injected.fetch_add(1, Ordering::Relaxed);
            match fault {
                Fault::Throttle => {
                    s.throttled.fetch_add(1, Ordering::Relaxed);
                    return respond(
                        &mut client,
                        "400 Bad Request",
                        true,
                        "ProvisionedThroughputExceededException",
                        "Rate exceeded for shard",
                    );
                }
                Fault::ExpiredIterator => {
                    s.expired.fetch_add(1, Ordering::Relaxed);
                    return respond(
                        &mut client,
                        "400 Bad Request",
                        true,
                        "ExpiredIteratorException",
                        "Iterator expired",
                    );
                }
                Fault::SlowDown => {
                    s.slow_down.fetch_add(1, Ordering::Relaxed);
                    return respond(
                        &mut client,
                        "503 Slow Down",
                        kinesis,
                        "SlowDown",
                        "Please reduce your request rate.",
                    );
                }
                Fault::ServerError => {
                    s.server_errors.fetch_add(1, Ordering::Relaxed);
                    return respond(
                        &mut client,
                        "500 Internal Server Error",
                        kinesis,
                        if kinesis {
                            "InternalFailure"
                        } else {
                            "InternalError"
                        },
                        "We encountered an internal error",
                    );
                }
                Fault::Drop => {
                    s.dropped.fetch_add(1, Ordering::Relaxed);
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    return Ok(());
                }
                Fault::Delay(ms) => {
                    s.delayed.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(ms));
                }
                Fault::LostAck => lose_ack = true,
            }
        }
    }
    let mut up = TcpStream::connect(&plan.upstream)?;
    up.write_all(&head)?;
    up.write_all(&body)?;
    let mut response = Vec::new();
    up.read_to_end(&mut response)?;
    if lose_ack {
        s.acks_lost.fetch_add(1, Ordering::Relaxed);
        let _ = client.shutdown(std::net::Shutdown::Both);
        return Ok(());
    }
    client.write_all(&response)
}
