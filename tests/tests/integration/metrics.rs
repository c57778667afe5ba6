//! `tributary run --metrics-addr`: Prometheus text while a Kinesis pipeline runs — records in
//! and out, commits, and each shard's lag behind the stream's tip.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tributary_tests::aws::{create_stream, kinesis, storage_toml, unique};
use tributary_tests::http::request;
use tributary_tests::{EVENTS_SCHEMA, TempProject, tributary_bin};

/// The value of the sample `name{labels}` in a scrape.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_pipeline_is_scraped_as_prometheus_text() {
    let stream = unique("metrics");
    create_stream(&kinesis().await, &stream, 2).await;
    let config = format!(
        "[project]\nlake = \"lake\"\n\n{}\n[pipelines.events]\ntable = \"events\"\nsource = {{ type = \"kinesis\", stream = \"{stream}\", discovery_interval_secs = 1, idle_poll_ms = 200 }}\n[pipelines.events.sink]\nflush_interval_secs = 1\n",
        storage_toml()
    );
    let p = TempProject::new(&config, &[("events", EVENTS_SCHEMA)]);
    p.gen_events(1000, 1, 0.0, 96);
    tributary_tests::aws::send(&p, &stream, &["data"]);

    let mut child = Command::new(tributary_bin())
        .current_dir(p.path())
        .args(["--no-progress", "run", "--metrics-addr", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("metrics on http://") {
                let _ = tx.send(addr.trim_end_matches("/metrics").to_string());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let until = Instant::now() + Duration::from_secs(90);
    let text = loop {
        let r = request(&addr, "GET", "/metrics", None, None);
        assert_eq!(r.status, 200);
        let text = String::from_utf8_lossy(&r.body).into_owned();
        if sample(&text, "tributary_records_out_total{pipeline=\"events\"}") == Some(1000.0) {
            break text;
        }
        assert!(Instant::now() < until, "not all records committed: {text}");
        std::thread::sleep(Duration::from_millis(300));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        sample(&text, "tributary_records_in_total{pipeline=\"events\"}"),
        Some(1000.0)
    );
    assert!(sample(&text, "tributary_commits_total{pipeline=\"events\"}").unwrap() >= 1.0);
    assert!(
        sample(
            &text,
            "tributary_last_commit_timestamp_seconds{pipeline=\"events\"}"
        )
        .unwrap()
            > 1.7e9
    );
    // Both shards report their lag and their records (together: every record).
    let shard_lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with(
                "tributary_kinesis_millis_behind_latest{pipeline=\"events\",shard=\"shardId-",
            )
        })
        .collect();
    assert_eq!(shard_lines.len(), 2, "{text}");
    let per_shard: f64 = text
        .lines()
        .filter(|l| l.starts_with("tributary_kinesis_records_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(per_shard, 1000.0, "{text}");
}
