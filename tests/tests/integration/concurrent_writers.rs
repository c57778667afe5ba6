//! Several pipelines appending to one table at once: on a local lake and on an S3 lake (the
//! S3 one behind a proxy that loses commit acknowledgements and delays log writes), with 2–4
//! writers, the table either created by the race itself or already there. Every scenario
//! must end with each record in the table exactly once and each writer's count right.
//!
//! The suite runs every scenario `TRIBUTARY_STRESS_ITERATIONS` times (default 1);
//! `scripts/stress-commits.sh` runs them hundreds of times under CPU starvation.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use tributary::runtime::{RunOptions, run_pipeline};
use tributary_tests::aws::{create_bucket, endpoint, unique};
use tributary_tests::fault::{ChaosProxy, Fault};
use tributary_tests::{EVENTS_SCHEMA, TempProject};

/// Records per writer, and the records per chunk and rows per commit: each writer makes
/// six commits (with one chunk per file, a writer would commit once, at the end).
const RECORDS: usize = 600;
const FLUSH_ROWS: usize = 100;

#[derive(Debug, Clone, Copy)]
struct Scenario {
    s3: bool,
    writers: usize,
    /// The table exists before the writers start (else they race to create it).
    precreated: bool,
}

fn iterations() -> usize {
    std::env::var("TRIBUTARY_STRESS_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// `writers` pipelines `w0…`, each reading its own folder into table `events`.
fn project(lake: &str, storage: &str, writers: usize) -> TempProject {
    let mut config = format!("[project]\nlake = \"{lake}\"\n\n{storage}\n");
    for w in 0..writers {
        config.push_str(&format!(
            "[pipelines.w{w}]\ntable = \"events\"\nbatch_size = {FLUSH_ROWS}\nsource = {{ type = \"file\", path = \"data/w{w}/*.ndjson\" }}\n[pipelines.w{w}.sink]\nflush_rows = {FLUSH_ROWS}\n\n"
        ));
    }
    let p = TempProject::new(&config, &[("events", EVENTS_SCHEMA)]);
    for w in 0..writers {
        let dir = p.data_dir().join(format!("w{w}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut text = String::new();
        for i in 0..RECORDS {
            // Spread over days, so commits add files to several partitions.
            text.push_str(&format!(
                "{{\"event_id\":\"w{w}-{i}\",\"event_time\":\"2024-06-0{}T10:00:00Z\",\"customer_id\":{i},\"total_amount\":1.5}}\n",
                1 + i % 4
            ));
        }
        std::fs::write(dir.join("part.ndjson"), text).unwrap();
    }
    p
}

async fn run_scenario(s: Scenario, round: usize) {
    // The S3 lake's log writes go through the proxy: every second one is either applied
    // with its answer lost or delayed, in turn.
    let proxy = s.s3.then(|| {
        ChaosProxy::start_on_paths(
            &endpoint(),
            &["put"],
            Some("/_delta_log/0"),
            &[Fault::LostAck, Fault::Delay(150)],
            2,
        )
    });
    let (lake, storage) = match &proxy {
        Some(proxy) => {
            let bucket = unique("writers");
            create_bucket(&bucket);
            (
                format!("s3://{bucket}/lake"),
                format!(
                    "[storage.s3]\nendpoint = \"{}\"\nallow_http = true\nregion = \"us-east-1\"\n",
                    proxy.endpoint
                ),
            )
        }
        None => ("lake".to_string(), String::new()),
    };
    let p = project(&lake, &storage, s.writers);
    let cfg = p.config().await;
    let lake = p.lake().await;
    if s.precreated {
        let t = &cfg.pipelines[0].table;
        lake.open_or_create(&t.name, &t.table_schema(), &t.partition_columns(), None)
            .await
            .unwrap();
    }
    let opts = RunOptions::default();
    let runs = futures::future::join_all(
        cfg.pipelines
            .iter()
            .map(|pipeline| run_pipeline(pipeline, &lake, &opts)),
    )
    .await;
    let what = format!(
        "{s:?}, round {round}{}",
        proxy
            .as_ref()
            .map(|x| format!(" ({})", x.stats.summary()))
            .unwrap_or_default()
    );
    for (w, r) in runs.into_iter().enumerate() {
        let r = r.unwrap_or_else(|e| panic!("{what}: writer w{w} failed: {e}"));
        assert_eq!(r.records_written, RECORDS as u64, "{what}: writer w{w}");
        assert_eq!(r.commits, RECORDS / FLUSH_ROWS, "{what}: writer w{w}");
    }
    if let Some(proxy) = &proxy {
        proxy.set_faults(false);
    }
    let ids = p.query_csv("SELECT event_id FROM events").await[1..].to_vec();
    let distinct: HashSet<&String> = ids.iter().collect();
    let want = s.writers * RECORDS;
    assert_eq!(distinct.len(), ids.len(), "{what}: duplicates");
    assert_eq!(ids.len(), want, "{what}: {} rows of {want}", ids.len());
    // A second run of every writer adds nothing: each one's positions were committed.
    for pipeline in &cfg.pipelines {
        let again = run_pipeline(pipeline, &lake, &opts).await.unwrap();
        assert_eq!(
            again.records_written, 0,
            "{what}: rerun of {}",
            pipeline.name
        );
    }
    assert_eq!(p.count("SELECT count(*) FROM events").await, want as i64);
    if let Some(proxy) = &proxy {
        // The faults were there to be survived: make sure some were met.
        assert!(
            proxy.stats.injected.load(Ordering::Relaxed) >= 2,
            "{what}: no faults injected"
        );
    }
    // Progress for scripts/stress-commits.sh (shown with --nocapture).
    eprintln!("scenario ok: {what}");
}

async fn scenarios(s3: bool) {
    for round in 0..iterations() {
        for writers in 2..=4 {
            for precreated in [false, true] {
                run_scenario(
                    Scenario {
                        s3,
                        writers,
                        precreated,
                    },
                    round,
                )
                .await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_on_a_local_lake_lose_and_duplicate_nothing() {
    scenarios(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_on_s3_with_lost_and_slow_acks_lose_and_duplicate_nothing() {
    scenarios(true).await;
}
