//! A pipeline run as three stage processes (ingest, transform, sink) handing over through the
//! lake's staging area: every record once in the table or the DLQ, with all three processes
//! killed mid-way and restarted; the transform pool grows with its backlog.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tributary_tests::{TempProject, assert_exactly_once, cli, sent, tributary_bin};

fn stage(p: &TempProject, stage: &str, extra: &[&str]) -> Child {
    Command::new(tributary_bin())
        .current_dir(p.path())
        .args(["--no-progress", "run", "events", "--stage", stage])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits for `child` to exit 0 and returns its closing line.
fn finish(mut child: Child, what: &str) -> String {
    let until = Instant::now() + Duration::from_secs(180);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut out = String::new();
            std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
            assert!(status.success(), "{what} failed: {out}");
            return out;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("{what} did not finish");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Complete segments in a staging folder (not the partial files of killed writes).
fn segments(p: &TempProject, dir: &str) -> usize {
    std::fs::read_dir(p.path().join("lake/_tributary/staging/events").join(dir))
        .map(|d| {
            d.flatten()
                .filter(|e| !e.file_name().to_string_lossy().contains('#'))
                .count()
        })
        .unwrap_or(0)
}

fn staged_files(p: &TempProject, dir: &str) -> usize {
    std::fs::read_dir(p.path().join("lake/_tributary/staging/events").join(dir))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_stage_processes_deliver_exactly_once_through_kills() {
    // Small chunks: many segments, so kills land in the middle of the work.
    let p = TempProject::events(
        "batch_size = 200\n[pipelines.events.stages.transform]\nmin_workers = 1\nmax_workers = 3\n",
    );
    p.gen_events(20_000, 4, 0.01, 95);
    let (want, bad) = sent(&p);
    assert!(bad > 0);

    let ingest = stage(&p, "ingest", &[]);
    let transform = stage(&p, "transform", &[]);
    // Kill transform once it has handed some segments over, and restart it.
    let until = Instant::now() + Duration::from_secs(60);
    while segments(&p, "out") < 3 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut transform = transform;
    transform.kill().unwrap();
    transform.wait().unwrap();
    // Ingest runs on until 64 chunks wait (backpressure), and is killed there.
    let until = Instant::now() + Duration::from_secs(60);
    while segments(&p, "raw") < 40 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut ingest = ingest;
    ingest.kill().unwrap();
    ingest.wait().unwrap();
    // The sink starts late (a backlog of transformed segments), is killed, and restarted.
    let mut sink = stage(&p, "sink", &[]);
    std::thread::sleep(Duration::from_millis(300));
    sink.kill().unwrap();
    sink.wait().unwrap();
    let ingest = stage(&p, "ingest", &[]);
    let transform = stage(&p, "transform", &[]);
    let sink = stage(&p, "sink", &[]);
    let ingest_out = finish(ingest, "ingest");
    let transform_out = finish(transform, "transform");
    let sink_out = finish(sink, "sink");
    // The restarted ingest went on from what was staged, not from the start.
    let resumed: u64 = ingest_out
        .split("ingest: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{ingest_out}"));
    assert!(resumed > 0 && resumed < 100, "{ingest_out}");
    // The restarted transform found a backlog and grew its pool beyond one worker.
    let workers: usize = transform_out
        .rsplit("up to ")
        .next()
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{transform_out}"));
    assert!(workers >= 2, "{transform_out}");
    assert!(sink_out.contains("sink: "), "{sink_out}");

    assert_exactly_once(&p, &want, Some(bad)).await;
    // Everything handed over was consumed: no segment left behind.
    // raw/ holds not even the partial file of a write killed mid-put: the restarted ingest,
    // its only writer, swept it. (out/'s are swept by the sink once 10 s old.)
    assert_eq!(staged_files(&p, "raw"), 0);
    assert_eq!(segments(&p, "out"), 0);

    // The table's positions are the same as a plain run's: it continues, and adds nothing.
    let o = Command::new(tributary_bin())
        .current_dir(p.path())
        .args(["--no-progress", "run", "events"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_exactly_once(&p, &want, Some(bad)).await;
    // A second ingest over the same input stages nothing new.
    let again = finish(stage(&p, "ingest", &[]), "ingest");
    assert!(again.contains("ingest: 0 segments"), "{again}");

    // One sink at a time: a second waits for the first's lease.
    std::fs::remove_file(p.path().join("lake/_tributary/staging/events/ingest.done")).unwrap();
    // The first sink's lease is taken once a newer epoch of it is in the lake (waited for:
    // a busy machine may take seconds to start the process). Old epochs are pruned, so the
    // highest number tells, not the count.
    let epochs = || {
        tributary_tests::crash::highest_numbered_json(
            &p.path().join("lake/_tributary/leases/events-stages/sink"),
        )
    };
    let before = epochs();
    let first = stage(&p, "sink", &["--idle-exit", "3"]);
    let until = Instant::now() + Duration::from_secs(120);
    while epochs() <= before {
        assert!(
            Instant::now() < until,
            "the first sink never took its lease"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let t = Instant::now();
    let second = Command::new(tributary_bin())
        .current_dir(p.path())
        .args([
            "--no-progress",
            "run",
            "events",
            "--stage",
            "sink",
            "--idle-exit",
            "1",
        ])
        .output()
        .unwrap();
    assert!(second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("holds its lease; waiting"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(t.elapsed() >= Duration::from_secs(2), "{:?}", t.elapsed());
    finish(first, "first sink");
}

#[test]
fn stages_refuse_bad_settings_a_stream_source_and_no_pipeline() {
    // `validate` refuses the config (exit 2): its errors.
    let refused = |extra: &str| {
        let o = cli(&TempProject::events(extra), &["validate"]);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert_eq!(o.status.code(), Some(2), "{err}");
        err
    };
    let err = refused("[pipelines.events.stages.transform]\nmin_workers = 2\nmax_workers = 1\n");
    assert!(err.contains("tributary.toml:9:15"), "{err}");
    assert!(
        err.contains("max_workers (1) is below min_workers (2)"),
        "{err}"
    );
    // Split stage functions need an S3 source (their hand-over runs on bucket notifications).
    let err = refused("[pipelines.events.lambda]\nsplit_stages = true\n");
    assert!(err.contains("tributary.toml:8:16"), "{err}");
    assert!(err.contains("only S3-source pipelines"), "{err}");
    let p = TempProject::events("");
    let o = Command::new(tributary_bin())
        .current_dir(p.path())
        .args(["run", "--stage", "sink"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let config = std::fs::read_to_string(p.config_path()).unwrap().replace(
        "{ type = \"file\", path = \"data/*.ndjson*\" }",
        "{ type = \"kinesis\", stream = \"s\" }",
    );
    std::fs::write(p.config_path(), config).unwrap();
    let o = Command::new(tributary_bin())
        .current_dir(p.path())
        .args(["run", "events", "--stage", "ingest"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("split stages read files and S3 objects"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
