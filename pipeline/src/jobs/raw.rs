//! A job file (`jobs/NAME.toml`) as written: serde with spans, unknown keys rejected,
//! defaults from named functions. `super::config` validates it into a `Job`.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJob {
    /// sql (default) | compact | vacuum | dlq_retention
    #[serde(rename = "type", default = "default_kind")]
    pub kind: Spanned<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// EventBridge expression: rate(…), cron(…) or at(…). Optional with `depends_on`.
    #[serde(default)]
    pub schedule: Option<Spanned<String>>,
    /// IANA time zone the schedule is read in.
    #[serde(default = "default_timezone")]
    pub timezone: Spanned<String>,
    #[serde(default = "default_true")]
    pub enabled: bool,

    // sql jobs
    #[serde(default)]
    pub sql: Option<Spanned<String>>,
    /// A .sql file, relative to the job file.
    #[serde(default)]
    pub sql_file: Option<Spanned<String>>,
    /// Target table (default: the job's name).
    #[serde(default)]
    pub target: Option<Spanned<String>>,
    /// append (default) | overwrite_partitions | overwrite | merge
    #[serde(default)]
    pub mode: Option<Spanned<String>>,
    #[serde(default)]
    pub partition_by: Vec<Spanned<String>>,
    /// Key columns for mode = "merge".
    #[serde(default)]
    pub merge_on: Vec<Spanned<String>>,
    /// Source table → new_rows | changed_partitions: what the SQL sees of it on each run.
    #[serde(default)]
    pub incremental: BTreeMap<Spanned<String>, Spanned<String>>,
    /// The source partition column `jobs backfill` steps through, a day at a time.
    #[serde(default = "default_backfill_column")]
    pub backfill_column: String,

    // every job
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: f64,
    #[serde(default)]
    pub retries: u32,
    #[serde(default = "default_retry_backoff_secs")]
    pub retry_backoff_secs: f64,
    #[serde(default)]
    pub depends_on: Vec<Spanned<String>>,
    /// skip (default) | queue: when a slot fires while the previous run is still going.
    #[serde(default = "default_overlap")]
    pub overlap: Spanned<String>,
    /// latest (default) | all | none: what happens to slots missed while nothing ran.
    #[serde(default = "default_catch_up")]
    pub catch_up: Spanned<String>,

    // maintenance jobs
    #[serde(default)]
    pub table: Option<Spanned<String>>,
    #[serde(default)]
    pub target_file_mb: Option<Spanned<u64>>,
    /// compact: only the partition with these values (e.g. { dt = "2026-11-27" }).
    #[serde(default)]
    pub partition: Option<Spanned<BTreeMap<String, String>>>,
    #[serde(default)]
    pub retention_hours: Option<Spanned<u64>>,
    #[serde(default)]
    pub retention_days: Option<Spanned<u64>>,
}

fn default_kind() -> Spanned<String> {
    Spanned::new(0..0, "sql".into())
}
fn default_timezone() -> Spanned<String> {
    Spanned::new(0..0, "UTC".into())
}
fn default_true() -> bool {
    true
}
fn default_backfill_column() -> String {
    "dt".into()
}
fn default_timeout_secs() -> f64 {
    3600.0
}
fn default_retry_backoff_secs() -> f64 {
    30.0
}
fn default_overlap() -> Spanned<String> {
    Spanned::new(0..0, "skip".into())
}
fn default_catch_up() -> Spanned<String> {
    Spanned::new(0..0, "latest".into())
}
