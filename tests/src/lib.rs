//! Helpers for Tributary's integration tests: temporary projects with their own lake, the
//! shared benchmark generator, the `tributary` binary, and independent answer checks.

pub mod aws;
pub mod conformance;
pub mod crash;
pub mod fault;
pub mod http;
pub mod lambda;
pub mod serve;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use tributary::config::Config;
use tributary::lake::Lake;
use tributary::query::QueryEngine;
use tributary::runtime::{RunOptions, RunSummary, run_pipeline};

/// The repository root (this crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `../shared/bench` beside the repository.
pub fn shared_bench() -> PathBuf {
    repo_root().parent().unwrap().join("shared").join("bench")
}

/// The `tributary` binary built next to this test binary (`cargo build --bins` first).
pub fn tributary_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join("tributary");
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo build -p tributary --bins`)",
        bin.display()
    );
    bin
}

/// `tributary --no-progress ARGS` run in the project's folder.
pub fn cli(p: &TempProject, args: &[&str]) -> std::process::Output {
    Command::new(tributary_bin())
        .arg("--no-progress")
        .args(args)
        .current_dir(p.path())
        .output()
        .unwrap()
}

/// A finished command's stdout and stderr, together (for assertions and messages).
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A project folder with its own config, schemas and lake, removed when dropped.
pub struct TempProject {
    pub dir: tempfile::TempDir,
}

/// Schema of the benchmark generator's events (`../shared/bench/gen_events.py`).
/// Schema of the benchmark generator's events (`../shared/bench/gen_events.py`), shared with
/// the benchmark project.
pub const EVENTS_SCHEMA: &str = include_str!("../../bench/schemas/events.toml");

impl TempProject {
    pub fn new(config: &str, schemas: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tributary.toml"), config).unwrap();
        std::fs::create_dir_all(dir.path().join("schemas")).unwrap();
        for (name, text) in schemas {
            std::fs::write(
                dir.path().join("schemas").join(format!("{name}.toml")),
                text,
            )
            .unwrap();
        }
        Self { dir }
    }

    /// A project running `gen_events.py` output from `data/` into table `events`.
    pub fn events(extra_pipeline_settings: &str) -> Self {
        let config = format!(
            "[project]\nlake = \"lake\"\n\n[pipelines.events]\ntable = \"events\"\nsource = {{ type = \"file\", path = \"data/*.ndjson*\" }}\n{extra_pipeline_settings}\n"
        );
        Self::new(&config, &[("events", EVENTS_SCHEMA)])
    }

    /// A copy of the repository's demo project: tributary.toml, schemas/ and jobs/.
    pub fn demo() -> Self {
        let root = repo_root();
        let config = std::fs::read_to_string(root.join("tributary.toml")).unwrap();
        let p = Self::new(&config, &[]);
        for dir in ["schemas", "jobs"] {
            std::fs::create_dir_all(p.path().join(dir)).unwrap();
            for e in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = e.unwrap().path();
                std::fs::copy(&path, p.path().join(dir).join(path.file_name().unwrap())).unwrap();
            }
        }
        p
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.path().join("tributary.toml")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.path().join("data")
    }

    pub async fn config(&self) -> Config {
        match Config::load(&self.config_path(), None).await {
            Ok(c) => c,
            Err(d) => panic!("config should be valid:\n{d}"),
        }
    }

    pub async fn run(&self) -> Vec<RunSummary> {
        let config = self.config().await;
        let lake = Lake::open(&config.project.lake, &config.storage.s3)
            .await
            .unwrap();
        let mut out = Vec::new();
        for p in &config.pipelines {
            out.push(
                run_pipeline(p, &lake, &RunOptions::default())
                    .await
                    .unwrap(),
            );
        }
        out
    }

    /// The project's lake (local or S3, as its config says).
    pub async fn lake(&self) -> Lake {
        let config = self.config().await;
        Lake::open(&config.project.lake, &config.storage.s3)
            .await
            .unwrap()
    }

    /// Runs SQL and returns the rows as CSV lines (header first).
    pub async fn query_csv(&self, sql: &str) -> Vec<String> {
        let engine = QueryEngine::open(&self.lake().await).await.unwrap();
        let result = engine.sql(sql).await.unwrap();
        let mut buf = Vec::new();
        tributary::query::write_result(&result, tributary::query::OutputFormat::Csv, &mut buf)
            .unwrap();
        String::from_utf8(buf)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let rows = self.query_csv(sql).await;
        rows[1].parse().unwrap()
    }

    /// Generates events with the shared benchmark generator into `data/`.
    pub fn gen_events(&self, records: u64, files: u32, bad_rate: f64, seed: u64) -> Manifest {
        let out = Command::new("python3")
            .arg(shared_bench().join("gen_events.py"))
            .args([
                "--records",
                &records.to_string(),
                "--files",
                &files.to_string(),
            ])
            .args([
                "--bad-rate",
                &bad_rate.to_string(),
                "--seed",
                &seed.to_string(),
            ])
            .arg("--out")
            .arg(self.data_dir())
            .output()
            .expect("python3 runs ../shared/bench/gen_events.py");
        assert!(
            out.status.success(),
            "gen_events failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(self.data_dir().join("manifest.json")).unwrap();
        Manifest(serde_json::from_str(&text).unwrap())
    }
}

/// `manifest.json` of a generator run.
pub struct Manifest(pub serde_json::Value);

impl Manifest {
    /// Total over all files of one line kind: good, truncated, wrong_type, missing_field.
    pub fn count(&self, kind: &str) -> u64 {
        self.0["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["counts"][kind].as_u64().unwrap())
            .sum()
    }
}

/// Per-day (count, revenue in cents) of the valid events in NDJSON files, computed with
/// serde_json alone — independently of the engine under test.
pub fn independent_daily(files: &[PathBuf]) -> (BTreeMap<String, (u64, i64)>, u64) {
    let mut days = BTreeMap::new();
    let mut bad = 0;
    for f in files {
        let text = std::fs::read_to_string(f).unwrap();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match valid_event(line) {
                Some((day, cents)) => {
                    let e = days.entry(day).or_insert((0, 0));
                    e.0 += 1;
                    e.1 += cents;
                }
                None => bad += 1,
            }
        }
    }
    (days, bad)
}

pub fn valid_event(line: &str) -> Option<(String, i64)> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    v["event_id"].as_str()?;
    v["customer_id"].as_i64()?;
    let ts = chrono::DateTime::parse_from_rfc3339(v["event_time"].as_str()?).ok()?;
    let amount = v["total_amount"].as_f64()?;
    let items = v.get("items")?;
    if !items.is_null() {
        for i in items.as_array()? {
            if !i["qty"].is_null() {
                i["qty"].as_i64()?;
            }
        }
    }
    let day = ts
        .with_timezone(&chrono::Utc)
        .format("%Y-%m-%d")
        .to_string();
    Some((day, (amount * 100.0).round() as i64))
}

/// NDJSON files under a folder, sorted.
pub fn ndjson_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".ndjson"))
        .collect();
    v.sort();
    v
}

/// The good event ids of the project's generated input files (what must end up in the
/// table), and how many bad lines they hold (what must end up in the DLQ).
pub fn sent(p: &TempProject) -> (std::collections::HashSet<String>, u64) {
    let mut ids = std::collections::HashSet::new();
    let mut bad = 0;
    for f in ndjson_files(&p.data_dir()) {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            if valid_event(line).is_some() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                ids.insert(v["event_id"].as_str().unwrap().to_string());
            } else if !line.trim().is_empty() {
                bad += 1;
            }
        }
    }
    (ids, bad)
}

/// The `events` table holds exactly `want` — nothing lost, nothing twice — and, when `bad`
/// is given, `events_dlq` holds exactly that many bad records, each once.
pub async fn assert_exactly_once(
    p: &TempProject,
    want: &std::collections::HashSet<String>,
    bad: Option<u64>,
) {
    let got = p.query_csv("SELECT event_id FROM events").await[1..].to_vec();
    let set: std::collections::HashSet<String> = got.iter().cloned().collect();
    assert_eq!(got.len(), set.len(), "duplicates in the table");
    assert_eq!(set.len(), want.len(), "records lost or extra");
    assert!(set == *want, "the table holds other records than were sent");
    if let Some(bad) = bad {
        assert_eq!(p.count("SELECT count(*) FROM events_dlq").await, bad as i64);
        assert_eq!(
            p.count("SELECT count(DISTINCT source || ':' || coalesce(record_id, CAST(position AS VARCHAR))) FROM events_dlq")
                .await,
            bad as i64,
            "a bad record dead-lettered twice"
        );
    }
}
