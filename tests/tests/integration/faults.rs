//! Faults in the services, injected by a proxy between Tributary and the real test servers:
//! throttling, S3 SlowDown, 500s, dropped connections and latency are retried with backoff
//! and jitter; a dead Kinesis endpoint opens the circuit breaker (reported, calls paused)
//! instead of being hammered; once the faults stop, the pipeline completes with nothing lost.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tributary_tests::aws::{create_bucket, create_stream, endpoint, kinesis, unique};
use tributary_tests::fault::{ChaosProxy, Fault};
use tributary_tests::http::request;
use tributary_tests::{
    EVENTS_SCHEMA, TempProject, assert_exactly_once, cli, ndjson_files, sent, tributary_bin,
};

fn send(p: &TempProject, stream: &str, file: &std::path::Path) {
    // Straight to the server (not through the proxy): the producer is not under test here.
    let out = Command::new(tributary_bin())
        .current_dir(p.path())
        .env("TRIBUTARY_CONFIG", "direct.toml")
        .args(["send", "--stream", stream, "--partition-key", "event_id"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of the sample `series` (name and labels) in a Prometheus scrape.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinesis_faults_are_retried_and_a_dead_endpoint_opens_the_circuit() {
    let stream = unique("chaos");
    create_stream(&kinesis().await, &stream, 4).await;
    let proxy = ChaosProxy::start(
        &endpoint(),
        &["GetRecords"],
        &[
            Fault::Throttle,
            Fault::ExpiredIterator,
            Fault::ServerError,
            Fault::Drop,
            Fault::Delay(300),
        ],
        2,
    );
    let storage = |e: &str| {
        format!(
            "[storage.kinesis]\nendpoint = \"{e}\"\nallow_http = true\nregion = \"us-east-1\"\n"
        )
    };
    let pipeline = format!(
        "[pipelines.events]\ntable = \"events\"\nsource = {{ type = \"kinesis\", stream = \"{stream}\", discovery_interval_secs = 1, lease_ttl_secs = 4, idle_poll_ms = 200 }}\n[pipelines.events.sink]\nflush_interval_secs = 1\n"
    );
    let p = TempProject::new(
        &format!(
            "[project]\nlake = \"lake\"\n\n{}\n{pipeline}",
            storage(&proxy.endpoint)
        ),
        &[("events", EVENTS_SCHEMA)],
    );
    std::fs::write(
        p.path().join("direct.toml"),
        format!(
            "[project]\nlake = \"lake\"\n\n{}\n{pipeline}",
            storage(&endpoint())
        ),
    )
    .unwrap();
    p.gen_events(20_000, 2, 0.0, 81);
    let files = ndjson_files(&p.data_dir());
    send(&p, &stream, &files[0]);
    // --idle-exit shorter than the outage below: an outage must not pass for idleness.
    let idle = Duration::from_secs(4);
    let mut child = Command::new(tributary_bin())
        .args(["--no-progress", "run", "--idle-exit", "4"])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .current_dir(p.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let log_reader = std::thread::spawn(move || {
        let mut log = String::new();
        for line in stderr.lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("metrics on http://") {
                let _ = addr_tx.send(addr.trim_end_matches("/metrics").to_string());
            }
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    let addr = addr_rx.recv_timeout(Duration::from_secs(60)).unwrap();
    let scrape = || {
        String::from_utf8_lossy(&request(&addr, "GET", "/metrics", None, None).body).into_owned()
    };
    tributary_tests::crash::wait_for_version(
        &p.path().join("lake/events"),
        1,
        Duration::from_secs(120),
        "no commit through the faulty proxy",
    );
    // The endpoint dies; meanwhile more records arrive (directly).
    proxy.set_dead(true);
    send(&p, &stream, &files[1]);
    // The metrics say the source is down (waited for, however slow the machine)...
    let up = "tributary_source_up{pipeline=\"events\"}";
    let deadline = Instant::now() + Duration::from_secs(120);
    while sample(&scrape(), up) != Some(0.0) {
        assert!(
            Instant::now() < deadline,
            "metrics never said the source is down: {}",
            scrape()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let text = scrape();
    assert_eq!(
        sample(&text, "tributary_source_caught_up{pipeline=\"events\"}"),
        Some(0.0),
        "{text}"
    );
    // ... and so does `status`, from its own calls.
    let status = cli(&p, &["status"]);
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(
        shown.contains(&format!("SOURCE DOWN: Kinesis stream {stream} unreachable")),
        "{shown}{}",
        String::from_utf8_lossy(&status.stderr)
    );
    // Dead for twice the idle window: the run waits instead of ending.
    let down = Instant::now();
    while down.elapsed() < idle * 2 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended while its source was down: {}",
            log_reader.join().unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let while_dead = proxy.stats.while_dead.load(Ordering::Relaxed);
    let dead_for = down.elapsed().as_secs_f64();
    proxy.set_dead(false);
    proxy.set_faults(false);
    let status = child.wait().unwrap();
    let log = log_reader.join().unwrap();
    assert!(status.success(), "{log}");
    assert!(log.contains("circuit open"), "{log}");
    assert!(log.contains("circuit closed"), "{log}");
    assert!(log.contains("caught up"), "{log}");
    eprintln!("kinesis chaos: {}", proxy.stats.summary());
    assert!(
        proxy.stats.expired.load(Ordering::Relaxed) >= 1,
        "{}",
        proxy.stats.summary()
    );
    assert!(
        log.contains("shard iterator expired; re-acquiring"),
        "{log}"
    );
    // 4 shard readers on a dead endpoint: paused by the breaker, not a retry storm.
    assert!(
        (while_dead as f64) < 25.0 * dead_for,
        "{while_dead} calls to a dead endpoint in {dead_for:.1} s"
    );
    assert_exactly_once(&p, &sent(&p).0, None).await;
}

/// A project reading `s3://bucket/in/` into a lake at `s3://bucket/lake`, both through the
/// S3 endpoint `endpoint` (a fault proxy).
fn s3_project(bucket: &str, endpoint: &str, batch_size: u32, flush_rows: u32) -> TempProject {
    let config = format!(
        "[project]\nlake = \"s3://{bucket}/lake\"\n\n[storage.s3]\nendpoint = \"{endpoint}\"\nallow_http = true\nregion = \"us-east-1\"\n\n[pipelines.events]\ntable = \"events\"\nbatch_size = {batch_size}\nsource = {{ type = \"s3\", url = \"s3://{bucket}/in/\" }}\n[pipelines.events.sink]\nflush_rows = {flush_rows}\n"
    );
    TempProject::new(&config, &[("events", EVENTS_SCHEMA)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_slowdown_errors_drops_and_latency_lose_nothing() {
    let bucket = unique("chaos");
    create_bucket(&bucket);
    let proxy = ChaosProxy::start(
        &endpoint(),
        &[],
        &[
            Fault::SlowDown,
            Fault::ServerError,
            Fault::Drop,
            Fault::Delay(200),
        ],
        4,
    );
    let p = s3_project(&bucket, &proxy.endpoint, 2000, 4000);
    p.gen_events(20_000, 4, 0.01, 82);
    tributary_tests::aws::upload_data(&bucket, "in/", &ndjson_files(&p.data_dir())).await;
    let out = cli(&p, &["run"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("s3 chaos: {}", proxy.stats.summary());
    assert!(
        proxy.stats.injected.load(Ordering::Relaxed) >= 10,
        "{}",
        proxy.stats.summary()
    );
    proxy.set_faults(false);
    assert_exactly_once(&p, &sent(&p).0, None).await;
    // A second run over the same objects adds nothing.
    let out = cli(&p, &["run"]);
    assert!(out.status.success());
    assert_exactly_once(&p, &sent(&p).0, None).await;
}

/// A commit whose answer is lost (the log entry was written; the connection closed before
/// the reply) is recognised as landed, not retried as a second commit nor failed: the run
/// completes in one go, and every record is in the table once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_commit_acknowledgements_neither_fail_nor_duplicate() {
    let bucket = unique("ack");
    create_bucket(&bucket);
    // Every second write of a Delta log entry is applied and its answer dropped.
    let proxy = ChaosProxy::start_on_paths(
        &endpoint(),
        &["put"],
        Some("/_delta_log/0"),
        &[Fault::LostAck],
        2,
    );
    let p = s3_project(&bucket, &proxy.endpoint, 1000, 2000);
    p.gen_events(12_000, 3, 0.01, 84);
    tributary_tests::aws::upload_data(&bucket, "in/", &ndjson_files(&p.data_dir())).await;
    let out = cli(&p, &["run"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    eprintln!("lost acks: {}", proxy.stats.summary());
    let lost = proxy.stats.acks_lost.load(Ordering::Relaxed);
    assert!(lost >= 3, "{}", proxy.stats.summary());
    assert!(err.contains("its acknowledgement was lost"), "{err}");
    proxy.set_faults(false);
    let (want, bad) = sent(&p);
    assert_exactly_once(&p, &want, Some(bad)).await;
}
