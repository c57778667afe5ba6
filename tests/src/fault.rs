//! A fault-injecting HTTP proxy in front of a real test server: it forwards requests, but
//! answers every n-th call of chosen AWS operations with a throttling error, as Kinesis does
//! under load (neither local server throttles by itself).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct FaultProxy {
    pub endpoint: String,
    /// Requests answered with an injected error so far.
    pub injected: Arc<AtomicU64>,
}

impl FaultProxy {
    /// Proxies to `upstream` (`http://host:port`); every `every`-th request whose
    /// `X-Amz-Target` names one of `operations` (e.g. `GetRecords`) is answered with
    /// `ProvisionedThroughputExceededException` instead of being forwarded.
    pub fn start(upstream: &str, operations: &[&str], every: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_string();
        let operations: Vec<String> = operations.iter().map(|s| s.to_string()).collect();
        let injected = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(AtomicU64::new(0));
        let inj = injected.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (upstream, operations, inj, seen) = (
                    upstream.clone(),
                    operations.clone(),
                    inj.clone(),
                    seen.clone(),
                );
                std::thread::spawn(move || {
                    let _ = serve(conn, &upstream, &operations, every.max(1), &inj, &seen);
                });
            }
        });
        Self { endpoint, injected }
    }
}

/// One client connection: requests in a row (keep-alive), each forwarded on a fresh
/// upstream connection or answered with an injected error.
fn serve(
    client: TcpStream,
    upstream: &str,
    operations: &[String],
    every: u64,
    injected: &AtomicU64,
    seen: &AtomicU64,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut client = client;
    loop {
        let mut head = Vec::new();
        let mut length = 0usize;
        let mut target = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
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
        let op = target.rsplit('.').next().unwrap_or("");
        if operations.iter().any(|o| o.eq_ignore_ascii_case(op))
            && seen.fetch_add(1, Ordering::Relaxed).is_multiple_of(every)
        {
            injected.fetch_add(1, Ordering::Relaxed);
            let msg = br#"{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded for shard (injected by the test proxy)"}"#;
            write!(
                client,
                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-ErrorType: ProvisionedThroughputExceededException\r\nContent-Length: {}\r\n\r\n",
                msg.len()
            )?;
            client.write_all(msg)?;
            continue;
        }
        let mut up = TcpStream::connect(upstream)?;
        up.write_all(&head)?;
        up.write_all(&body)?;
        let mut response = Vec::new();
        up.read_to_end(&mut response)?;
        client.write_all(&response)?;
        // The upstream answered with `Connection: close`: so does this connection.
        return Ok(());
    }
}
