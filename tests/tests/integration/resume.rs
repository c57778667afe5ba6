//! Exactly-once across re-runs, appends and a kill in the middle of a run.

use std::io::Write;
use std::time::{Duration, Instant};

use tributary_tests::{TempProject, ndjson_files, tributary_bin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_over_the_same_input_adds_nothing() {
    let p = TempProject::events("");
    p.gen_events(5000, 2, 0.03, 11);
    let first = &p.run().await[0];
    assert_eq!(first.records_written, 5000);
    let dlq = first.dead_lettered;
    let second = &p.run().await[0];
    assert_eq!(second.records_read, 0);
    assert_eq!(second.records_written, 0);
    assert_eq!(second.commits, 0);
    assert_eq!(p.count("SELECT count(*) FROM events").await, 5000);
    assert_eq!(p.count("SELECT count(*) FROM events_dlq").await, dlq as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appended_lines_are_picked_up_once() {
    let p = TempProject::events("");
    p.gen_events(3000, 1, 0.0, 12);
    p.run().await;
    let file = &ndjson_files(&p.data_dir())[0];
    let extra: String = (0..10)
        .map(|i| format!("{{\"event_id\":\"extra-{i}\",\"event_time\":\"2024-06-09T10:00:00Z\",\"customer_id\":1,\"total_amount\":1.5}}\n"))
        .collect();
    std::fs::OpenOptions::new()
        .append(true)
        .open(file)
        .unwrap()
        .write_all(extra.as_bytes())
        .unwrap();
    let s = &p.run().await[0];
    assert_eq!(s.records_read, 10);
    assert_eq!(s.records_written, 10);
    assert_eq!(p.count("SELECT count(*) FROM events").await, 3010);
    assert_eq!(
        p.count("SELECT count(*) FROM events WHERE dt = '2024-06-09'")
            .await,
        10
    );
}

/// SIGKILL the real binary while it is committing, run again: nothing lost, nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_run_resumes_without_loss_or_duplicates() {
    let p = TempProject::events("batch_size = 2000\n[pipelines.events.sink]\nflush_rows = 3000\n");
    let m = p.gen_events(60_000, 4, 0.01, 13);
    let bad = m.count("truncated") + m.count("wrong_type") + m.count("missing_field");
    let mut child = spawn_run(&p, std::process::Stdio::null());
    // Wait for a few commits, then kill without warning.
    wait_for_version(&p, 2, &mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = p.count("SELECT count(*) FROM events").await;
    assert!(
        partial > 0 && partial < 60_000,
        "killed after {partial} rows"
    );

    let s = &p.run().await[0];
    assert!(
        s.records_read < 60_000 + bad,
        "the second run resumed instead of starting over"
    );
    assert_eq!(p.count("SELECT count(*) FROM events").await, 60_000);
    assert_eq!(
        p.count("SELECT count(DISTINCT event_id) FROM events").await,
        60_000
    );
    assert_eq!(p.count("SELECT count(*) FROM events_dlq").await, bad as i64);
    assert_eq!(
        p.count(
            "SELECT count(DISTINCT source || ':' || CAST(position AS VARCHAR)) FROM events_dlq"
        )
        .await,
        bad as i64
    );
}

/// Ctrl-C (SIGINT): stop reading, commit what was read, exit 0; the next run continues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_run_commits_what_it_read_and_the_next_run_continues() {
    let p = TempProject::events("batch_size = 2000\n[pipelines.events.sink]\nflush_rows = 4000\n");
    p.gen_events(60_000, 4, 0.0, 14);
    let mut child = spawn_run(&p, std::process::Stdio::piped());
    wait_for_version(&p, 2, &mut child);
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let written: i64 = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("written"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary: {stdout}"));
    // Everything it reports as written is in the table, and it did stop early.
    assert_eq!(p.count("SELECT count(*) FROM events").await, written);
    assert!(
        written > 0 && written < 60_000,
        "stopped after {written} rows"
    );
    let s = &p.run().await[0];
    assert_eq!(s.records_written as i64, 60_000 - written);
    assert_eq!(
        p.count("SELECT count(DISTINCT event_id) FROM events").await,
        60_000
    );
}

/// `tributary run` in the project, as a child process.
fn spawn_run(p: &TempProject, out: std::process::Stdio) -> std::process::Child {
    std::process::Command::new(tributary_bin())
        .args(["--no-progress", "run"])
        .current_dir(p.path())
        .stdout(out)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until table `events` has reached `version` (a few commits into the run).
fn wait_for_version(p: &TempProject, version: u32, child: &mut std::process::Child) {
    let commit = p
        .path()
        .join(format!("lake/events/_delta_log/{version:020}.json"));
    let deadline = Instant::now() + Duration::from_secs(120);
    while !commit.exists() {
        assert!(
            Instant::now() < deadline,
            "no commit {version} within 2 minutes"
        );
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the run finished ({status}) before commit {version} was seen; make the input larger"
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
