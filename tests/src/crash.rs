//! The crash harness: starts `tributary run` again and again and kills it with SIGKILL at
//! seeded random moments — while it starts, reads, writes Parquet or commits — then lets a
//! last run finish, so a test can check that the lake holds exactly what was sent.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tributary_bin;

/// What the kills did.
#[derive(Debug, Default)]
pub struct KillReport {
    pub kills: u32,
    /// Runs that ended on their own before their kill (input exhausted).
    pub finished_early: u32,
    /// Table versions when each kill landed (progress between kills).
    pub versions_at_kill: Vec<u64>,
    /// Parquet files in the table's folder that no commit references: runs killed while
    /// writing or before committing what they wrote.
    pub orphan_files: usize,
}

/// `tributary run ARGS` in `dir`, stdout and stderr discarded.
pub fn spawn_run(dir: &Path, args: &[&str]) -> Child {
    Command::new(tributary_bin())
        .arg("--no-progress")
        .arg("run")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Newest committed version of a local table (the highest `_delta_log/N.json`).
pub fn local_version(table_dir: &Path) -> u64 {
    highest_numbered_json(&table_dir.join("_delta_log"))
}

/// Waits (polling, not sleeping a fixed time) until the local table at `table_dir` has
/// reached `version`; fails naming `what` if it has not within `within`.
pub fn wait_for_version(table_dir: &Path, version: u64, within: Duration, what: &str) {
    let deadline = std::time::Instant::now() + within;
    while local_version(table_dir) < version {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The highest N of the files `N.json` in a folder (0 if none): a Delta log's newest
/// version, a lease's newest epoch.
pub fn highest_numbered_json(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    name.strip_suffix(".json")?.parse::<u64>().ok()
                })
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// Kills `kills` runs, each after a random delay in `delay_ms` (from `seed`). A run that
/// ends before its kill is counted, and the delays that follow are drawn from a range half
/// as long (a fast machine gets through more input per run); after three in a row the input
/// is exhausted and the loop stops early (the test then sees fewer kills than it asked for
/// and says so).
pub fn kill_repeatedly(
    dir: &Path,
    args: &[&str],
    table_dir: &Path,
    kills: u32,
    delay_ms: std::ops::Range<u64>,
    seed: u64,
) -> KillReport {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut report = KillReport::default();
    let mut early_in_a_row = 0;
    let mut upper = delay_ms.end;
    while report.kills < kills && early_in_a_row < 3 {
        let mut child = spawn_run(dir, args);
        let wait = Duration::from_millis(rng.u64(delay_ms.start..upper.max(delay_ms.start + 1)));
        let started = Instant::now();
        let mut ended = None;
        while started.elapsed() < wait {
            if let Ok(Some(status)) = child.try_wait() {
                ended = Some(status);
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        match ended {
            Some(status) => {
                assert!(status.success(), "a run failed on its own: {status}");
                report.finished_early += 1;
                early_in_a_row += 1;
                upper = delay_ms.start + (upper - delay_ms.start) / 2;
            }
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                report.kills += 1;
                early_in_a_row = 0;
                report.versions_at_kill.push(local_version(table_dir));
            }
        }
    }
    report
}

/// Parquet files under `table_dir` that the table's current files do not include.
pub fn orphan_files(table_dir: &Path, referenced: &std::collections::HashSet<String>) -> usize {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                if !p.ends_with("_delta_log") {
                    walk(&p, root, out);
                }
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().to_string());
            }
        }
    }
    let mut files = Vec::new();
    walk(table_dir, table_dir, &mut files);
    files.iter().filter(|f| !referenced.contains(*f)).count()
}
