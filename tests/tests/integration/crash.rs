//! Exactly-once across crashes: `tributary run` killed with SIGKILL at ≥ 20 random moments
//! (starting, reading, writing Parquet, committing), restarted each time, then run to the
//! end — for the file source, an S3 prefix and a 4-shard Kinesis stream with ≥ 50k records.
//! The table must hold exactly the event ids sent and the DLQ exactly the bad records.

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use tributary_tests::aws::{create_bucket, create_stream, kinesis, storage_toml, unique};
use tributary_tests::crash::{kill_repeatedly, orphan_files};
use tributary_tests::{
    EVENTS_SCHEMA, Manifest, TempProject, assert_exactly_once, ndjson_files, sent, tributary_bin,
};

const KILLS: u32 = 20;

fn bad_lines(m: &Manifest) -> u64 {
    m.count("truncated") + m.count("wrong_type") + m.count("missing_field")
}

async fn report_orphans(p: &TempProject) -> usize {
    let table = p.lake().await.load("events").await.unwrap().unwrap();
    let referenced: HashSet<String> = table
        .snapshot()
        .unwrap()
        .log_data()
        .iter()
        .map(|f| f.path().to_string())
        .collect();
    orphan_files(&p.path().join("lake/events"), &referenced)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_source_survives_twenty_kills_exactly_once() {
    let p = TempProject::events("batch_size = 1000\n[pipelines.events.sink]\nflush_rows = 2000\n");
    // Enough input that twenty kills land before it runs out, on a fast machine too.
    let m = p.gen_events(100_000, 6, 0.01, 61);
    let (want, bad) = sent(&p);
    assert_eq!(bad, bad_lines(&m));
    let r = kill_repeatedly(
        p.path(),
        &[],
        &p.path().join("lake/events"),
        KILLS,
        150..1200,
        61,
    );
    assert_eq!(
        r.kills, KILLS,
        "the input ran out before {KILLS} kills: {r:?}"
    );
    let out = Command::new(tributary_bin())
        .args(["--no-progress", "run"])
        .current_dir(p.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_exactly_once(&p, &want, Some(bad)).await;
    eprintln!(
        "file: {} kills, versions at kill {:?}, {} orphan files from interrupted writes, {} records + {bad} bad checked",
        r.kills,
        r.versions_at_kill,
        report_orphans(&p).await,
        want.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_prefix_source_survives_twenty_kills_exactly_once() {
    let bucket = unique("crash");
    create_bucket(&bucket);
    let config = format!(
        "[project]\nlake = \"lake\"\n\n{}\n[pipelines.events]\ntable = \"events\"\nbatch_size = 1000\nsource = {{ type = \"s3\", url = \"s3://{bucket}/in/\" }}\n[pipelines.events.sink]\nflush_rows = 2000\n",
        storage_toml()
    );
    let p = TempProject::new(&config, &[("events", EVENTS_SCHEMA)]);
    // Enough input that twenty kills land before it runs out, on a fast machine too.
    let m = p.gen_events(100_000, 5, 0.01, 62);
    let (want, bad) = sent(&p);
    assert_eq!(bad, bad_lines(&m));
    tributary_tests::aws::upload_data(&bucket, "in/", &ndjson_files(&p.data_dir())).await;
    let r = kill_repeatedly(
        p.path(),
        &[],
        &p.path().join("lake/events"),
        KILLS,
        200..1500,
        62,
    );
    assert_eq!(
        r.kills, KILLS,
        "the input ran out before {KILLS} kills: {r:?}"
    );
    let out = Command::new(tributary_bin())
        .args(["--no-progress", "run"])
        .current_dir(p.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_exactly_once(&p, &want, Some(bad)).await;
    eprintln!(
        "s3: {} kills, versions at kill {:?}, {} orphan files, {} records + {bad} bad checked",
        r.kills,
        r.versions_at_kill,
        report_orphans(&p).await,
        want.len()
    );
}

fn kinesis_project(stream: &str) -> TempProject {
    let config = format!(
        "[project]\nlake = \"lake\"\n\n{}\n[pipelines.events]\ntable = \"events\"\nsource = {{ type = \"kinesis\", stream = \"{stream}\", discovery_interval_secs = 1, lease_ttl_secs = 2, idle_poll_ms = 200, max_records_per_call = 2000 }}\n[pipelines.events.sink]\nflush_rows = 3000\nflush_interval_secs = 1\n",
        storage_toml()
    );
    TempProject::new(&config, &[("events", EVENTS_SCHEMA)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinesis_four_shards_survive_twenty_kills_exactly_once() {
    let stream = unique("crash");
    create_stream(&kinesis().await, &stream, 4).await;
    let p = kinesis_project(&stream);
    let m = p.gen_events(50_000, 4, 0.01, 63);
    let (want, bad) = sent(&p);
    assert_eq!(bad, bad_lines(&m));
    tributary_tests::aws::send(&p, &stream, &["data"]);
    // Each restart waits out the killed worker's leases (2 s) before it reads.
    let r = kill_repeatedly(
        p.path(),
        &["--idle-exit", "3"],
        &p.path().join("lake/events"),
        KILLS,
        500..4000,
        63,
    );
    assert_eq!(
        r.kills, KILLS,
        "the input ran out before {KILLS} kills: {r:?}"
    );
    let out = Command::new(tributary_bin())
        .args(["--no-progress", "run", "--idle-exit", "4"])
        .current_dir(p.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_exactly_once(&p, &want, Some(bad)).await;
    eprintln!(
        "kinesis: {} kills, versions at kill {:?}, {} orphan files, {} records + {bad} bad checked",
        r.kills,
        r.versions_at_kill,
        report_orphans(&p).await,
        want.len()
    );
}

/// SIGTERM (what Lambda, systemd and Kubernetes send): stop reading, commit what is in
/// flight, exit 0 within a bounded time; the next run continues where it stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_stream_cleanly_and_the_next_run_continues() {
    let stream = unique("term");
    create_stream(&kinesis().await, &stream, 4).await;
    let p = kinesis_project(&stream);
    p.gen_events(20_000, 2, 0.0, 64);
    let (want, _) = sent(&p);
    tributary_tests::aws::send(&p, &stream, &["data"]);
    // No --idle-exit: a stream pipeline runs until it is told to stop.
    let mut child = Command::new(tributary_bin())
        .args(["--no-progress", "run"])
        .current_dir(p.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tributary_tests::crash::wait_for_version(
        &p.path().join("lake/events"),
        2,
        Duration::from_secs(60),
        "no commits within a minute",
    );
    let asked = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = loop {
        if let Some(_s) = child.try_wait().unwrap() {
            break child.wait_with_output().unwrap();
        }
        assert!(
            // Generous: what is in hand is committed first, on however busy a machine.
            asked.elapsed() < Duration::from_secs(60),
            "still running 60 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let stopped_in = asked.elapsed();
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let written: i64 = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("written"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary: {stdout}"));
    // What it reported written is what the table holds.
    assert_eq!(p.count("SELECT count(*) FROM events").await, written);
    eprintln!("SIGTERM: stopped in {stopped_in:?} with {written} records committed");
    let out = Command::new(tributary_bin())
        .args(["--no-progress", "run", "--idle-exit", "3"])
        .current_dir(p.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_exactly_once(&p, &want, Some(0)).await;
}

/// Two processes committing to one table at once (two pipelines, one table): Delta's
/// create-only commits make one of two racing commits lose; the loser retries at the next
/// version. No commit is lost and nothing is written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_writing_one_table_lose_nothing() {
    let config = "[project]\nlake = \"lake\"\n\n[pipelines.a]\ntable = \"events\"\nbatch_size = 500\nsource = { type = \"file\", path = \"data/a/*.ndjson\" }\n[pipelines.a.sink]\nflush_rows = 500\n\n[pipelines.b]\ntable = \"events\"\nbatch_size = 500\nsource = { type = \"file\", path = \"data/b/*.ndjson\" }\n[pipelines.b.sink]\nflush_rows = 500\n";
    let p = TempProject::new(config, &[("events", EVENTS_SCHEMA)]);
    p.gen_events(20_000, 2, 0.0, 65);
    for (i, f) in ndjson_files(&p.data_dir()).iter().enumerate() {
        let dir = p.data_dir().join(if i == 0 { "a" } else { "b" });
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::rename(f, dir.join("part.ndjson")).unwrap();
    }
    // Both start on a lake without the table: creating it is part of the race.
    let spawn = |name: &str| {
        Command::new(tributary_bin())
            .args(["--no-progress", "run", name])
            .current_dir(p.path())
            .output()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| spawn("a").unwrap());
        let b = s.spawn(|| spawn("b").unwrap());
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    assert_eq!(p.count("SELECT count(*) FROM events").await, 20_000);
    assert_eq!(
        p.count("SELECT count(DISTINCT event_id) FROM events").await,
        20_000
    );
    let versions = tributary_tests::crash::local_version(&p.path().join("lake/events"));
    eprintln!("two writers: {versions} commits interleaved on one table");
    assert!(versions >= 20, "{versions} commits");
}
