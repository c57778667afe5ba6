//! The TOML model as written (low-level): serde structs with spans, defaults from named
//! functions, unknown keys rejected. `super::validate` turns it into typed config.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub project: RawProject,
    #[serde(default)]
    pub storage: RawStorage,
    #[serde(default)]
    pub query: RawQuery,
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub scheduler: RawScheduler,
    #[serde(default)]
    pub lambda: RawLambda,
    #[serde(default)]
    pub pipelines: BTreeMap<Spanned<String>, Spanned<RawPipeline>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProject {
    #[serde(default = "default_project_name")]
    pub name: String,
    /// Local folder (relative to the config file) or an object-store URL.
    #[serde(default = "default_lake")]
    pub lake: Spanned<String>,
    /// Folder of table schemas, relative to the config file.
    #[serde(default = "default_schemas")]
    pub schemas: Spanned<String>,
    /// Folder of job definitions, relative to the config file.
    #[serde(default = "default_jobs")]
    pub jobs: Spanned<String>,
}

impl Default for RawProject {
    fn default() -> Self {
        Self {
            name: default_project_name(),
            lake: default_lake(),
            schemas: default_schemas(),
            jobs: default_jobs(),
        }
    }
}

fn default_project_name() -> String {
    "tributary".into()
}
fn default_lake() -> Spanned<String> {
    Spanned::new(0..0, "lake".into())
}
fn default_schemas() -> Spanned<String> {
    Spanned::new(0..0, "schemas".into())
}
fn default_jobs() -> Spanned<String> {
    Spanned::new(0..0, "jobs".into())
}

/// `[scheduler]`: how scheduled jobs run.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScheduler {
    /// Job runs at once; more wait (state STARTING).
    #[serde(default = "default_max_concurrent_runs")]
    pub max_concurrent_runs: usize,
    /// A slot this many seconds late still runs under catch_up = "none".
    #[serde(default = "default_grace_secs")]
    pub grace_secs: u64,
    /// A scheduler silent this long is dead: the runs it left RUNNING are marked FAILED.
    #[serde(default = "default_heartbeat_ttl_secs")]
    pub heartbeat_ttl_secs: u64,
}

impl Default for RawScheduler {
    fn default() -> Self {
        Self {
            max_concurrent_runs: default_max_concurrent_runs(),
            grace_secs: default_grace_secs(),
            heartbeat_ttl_secs: default_heartbeat_ttl_secs(),
        }
    }
}

fn default_heartbeat_ttl_secs() -> u64 {
    30
}

fn default_max_concurrent_runs() -> usize {
    4
}
fn default_grace_secs() -> u64 {
    300
}

/// `tributary serve`: the HTTP query API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Address to listen on; loopback unless set otherwise.
    #[serde(default = "default_server_bind")]
    pub bind: Spanned<String>,
    /// Address for Arrow Flight SQL (ADBC, JDBC, BI tools).
    #[serde(default = "default_flight_bind")]
    pub flight_bind: Spanned<String>,
    /// Bearer token, as "${env:NAME}" (default: the TRIBUTARY_TOKEN environment variable).
    #[serde(default)]
    pub token: Option<Spanned<String>>,
    /// Queries running at once; more wait in a queue.
    #[serde(default = "default_server_concurrency")]
    pub concurrency: usize,
    /// Identical query text within this many seconds reuses the earlier results (0 = never).
    #[serde(default)]
    pub reuse_results_secs: u64,
    /// Queries that may wait for a slot beyond `concurrency`; more are refused at once
    /// (HTTP 429, Flight RESOURCE_EXHAUSTED).
    #[serde(default = "default_server_queue")]
    pub queue: usize,
    /// Stored query results are deleted this long after they were written.
    #[serde(default = "default_results_retention_hours")]
    pub results_retention_hours: Spanned<f64>,
    /// Query history entries (SQL text, parameters) are deleted after this long.
    #[serde(default = "default_history_retention_days")]
    pub history_retention_days: Spanned<f64>,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            bind: default_server_bind(),
            flight_bind: default_flight_bind(),
            token: None,
            concurrency: default_server_concurrency(),
            reuse_results_secs: 0,
            queue: default_server_queue(),
            results_retention_hours: default_results_retention_hours(),
            history_retention_days: default_history_retention_days(),
        }
    }
}

fn default_server_bind() -> Spanned<String> {
    Spanned::new(0..0, "127.0.0.1:8484".into())
}
fn default_flight_bind() -> Spanned<String> {
    Spanned::new(0..0, "127.0.0.1:8485".into())
}
fn default_server_concurrency() -> usize {
    4
}
fn default_server_queue() -> usize {
    64
}
fn default_results_retention_hours() -> Spanned<f64> {
    Spanned::new(0..0, 24.0)
}
fn default_history_retention_days() -> Spanned<f64> {
    Spanned::new(0..0, 30.0)
}

/// Limits on every query (CLI, REPL, servers), like an Athena workgroup's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuery {
    /// Memory for a query's operators; sorts and aggregations spill to disk beyond it.
    #[serde(default = "default_query_memory_mb")]
    pub memory_mb: u64,
    /// Cancel a query after this long (0 = never).
    #[serde(default = "default_query_timeout_secs")]
    pub timeout_secs: u64,
    /// Cancel a query once it would read more than this from the lake (0 = no cap).
    #[serde(default)]
    pub max_scanned_mb: u64,
    /// The SQL dialect queries are read in: `trino` (Athena engine v3's, the default) or
    /// `datafusion`. A query may ask for the other (`--dialect`, the API's `dialect`).
    #[serde(default)]
    pub dialect: crate::query::trino::Dialect,
}

impl Default for RawQuery {
    fn default() -> Self {
        Self {
            memory_mb: default_query_memory_mb(),
            timeout_secs: default_query_timeout_secs(),
            max_scanned_mb: 0,
            dialect: Default::default(),
        }
    }
}

fn default_query_memory_mb() -> u64 {
    4096
}
fn default_query_timeout_secs() -> u64 {
    1800
}

/// How AWS services are reached; unset values come from the standard AWS chain
/// (environment, profile, instance role).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    /// S3: the lake when it is `s3://…`, and S3 sources.
    #[serde(default)]
    pub s3: Option<Spanned<RawAws>>,
    /// Kinesis sources and `tributary send`.
    #[serde(default)]
    pub kinesis: Option<Spanned<RawAws>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAws {
    /// e.g. "http://127.0.0.1:5055" for a local S3/Kinesis-compatible server.
    #[serde(default)]
    pub endpoint: Option<Spanned<String>>,
    #[serde(default)]
    pub region: Option<Spanned<String>>,
    /// Allow plain HTTP to `endpoint` (local servers only).
    #[serde(default)]
    pub allow_http: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    /// Target table; its schema is `schemas/<table>.toml`.
    pub table: Spanned<String>,
    /// Schema the source records are decoded with, when transforms reshape them
    /// (defaults to the table's schema).
    #[serde(default)]
    pub input_schema: Option<Spanned<String>>,
    #[serde(default = "default_on_bad_record")]
    pub on_bad_record: Spanned<String>,
    pub source: Spanned<RawSource>,
    #[serde(default)]
    pub transforms: Vec<Spanned<RawTransform>>,
    /// Records per decoded batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: Spanned<usize>,
    /// Decode + transform workers; 0 = one per core.
    #[serde(default)]
    pub parallelism: usize,
    /// Records larger than this go to the dead-letter table.
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: Spanned<usize>,
    /// A field whose repeated values within one batch are duplicates: the first is kept,
    /// the others are dead-lettered (`duplicate`).
    #[serde(default)]
    pub dedupe_key: Option<Spanned<String>>,
    #[serde(default)]
    pub sink: RawSink,
    /// How `tributary deploy sam` runs this pipeline as a function (overrides `[lambda]`).
    #[serde(default)]
    pub lambda: RawLambda,
    /// Stage processes (`run NAME --stage ...`).
    #[serde(default)]
    pub stages: RawStages,
}

/// `[pipelines.x.stages]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStages {
    #[serde(default)]
    pub ingest: RawIngestStage,
    #[serde(default)]
    pub transform: RawWorkers,
}

/// `[pipelines.x.stages.ingest]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIngestStage {
    /// Raw segments waiting for transform at which ingest pauses (0: never pause, e.g. to
    /// stage a whole input before transforming it).
    pub max_backlog: Option<usize>,
}

/// A stage's worker pool bounds: it grows with its backlog up to `max_workers` and shrinks
/// when idle down to `min_workers`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkers {
    pub min_workers: Option<Spanned<usize>>,
    pub max_workers: Option<Spanned<usize>>,
}

/// Lambda settings: `[lambda]` for every function, `[pipelines.x.lambda]` for one.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLambda {
    pub memory_mb: Option<Spanned<u32>>,
    pub timeout_secs: Option<Spanned<u32>>,
    /// x86_64 | arm64
    pub architecture: Option<Spanned<String>>,
    /// Concurrent executions reserved for the function (0 = none reserved).
    pub reserved_concurrency: Option<Spanned<u32>>,
    // Kinesis event source mapping:
    pub batch_size: Option<Spanned<u32>>,
    pub max_batching_window_secs: Option<Spanned<u32>>,
    pub parallelization_factor: Option<Spanned<u32>>,
    pub bisect_on_error: Option<bool>,
    pub max_retry_attempts: Option<Spanned<i32>>,
    pub max_record_age_secs: Option<Spanned<i32>>,
    /// S3-source pipelines: deploy the ingest, transform and sink stages as three functions
    /// (each scaled on its own) instead of one.
    pub split_stages: Option<Spanned<bool>>,
}

fn default_on_bad_record() -> Spanned<String> {
    Spanned::new(0..0, "dlq".into())
}
fn default_batch_size() -> Spanned<usize> {
    Spanned::new(0..0, 16_384)
}
fn default_max_record_bytes() -> Spanned<usize> {
    Spanned::new(0..0, 1 << 20)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    /// file: a glob or a directory.
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    /// kinesis: the stream name.
    #[serde(default)]
    pub stream: Option<Spanned<String>>,
    /// kinesis: "trim_horizon" | "latest" | "at_timestamp" (with `timestamp`).
    #[serde(default)]
    pub start: Option<Spanned<String>>,
    /// kinesis: RFC 3339 time for `start = "at_timestamp"`.
    #[serde(default)]
    pub timestamp: Option<Spanned<String>>,
    /// kinesis: records per GetRecords call (1..=10000).
    #[serde(default)]
    pub max_records_per_call: Option<Spanned<i64>>,
    /// kinesis: pause between polls of a caught-up shard.
    #[serde(default)]
    pub idle_poll_ms: Option<Spanned<u64>>,
    /// kinesis: lease lifetime without renewal (shards shared between processes).
    #[serde(default)]
    pub lease_ttl_secs: Option<Spanned<u64>>,
    /// kinesis: how often shards are listed again (splits and merges).
    #[serde(default)]
    pub discovery_interval_secs: Option<Spanned<u64>>,
    /// s3: `s3://bucket/prefix/`.
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    /// s3: poll for new objects this often (0 = read what is there and stop).
    #[serde(default)]
    pub poll_interval_secs: Option<Spanned<u64>>,
}

/// When the sink closes files and commits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSink {
    /// Roll a data file at about this size (compressed).
    #[serde(default = "default_target_file_mb")]
    pub target_file_mb: u64,
    /// Roll a data file at this many rows at most.
    #[serde(default = "default_max_file_rows")]
    pub max_file_rows: u64,
    /// Commit after this many rows (all open files are closed together).
    #[serde(default = "default_flush_rows")]
    pub flush_rows: u64,
    /// Commit at least this often while data is flowing.
    #[serde(default = "default_flush_interval_secs")]
    pub flush_interval_secs: u64,
    /// Rows per Parquet row group.
    #[serde(default = "default_row_group_rows")]
    pub row_group_rows: usize,
    /// zstd level for Parquet pages.
    #[serde(default = "default_zstd_level")]
    pub zstd_level: i32,
}

impl Default for RawSink {
    fn default() -> Self {
        Self {
            target_file_mb: default_target_file_mb(),
            max_file_rows: default_max_file_rows(),
            flush_rows: default_flush_rows(),
            flush_interval_secs: default_flush_interval_secs(),
            row_group_rows: default_row_group_rows(),
            zstd_level: default_zstd_level(),
        }
    }
}

fn default_max_file_rows() -> u64 {
    10_000_000
}
fn default_target_file_mb() -> u64 {
    128
}
fn default_flush_rows() -> u64 {
    2_000_000
}
fn default_flush_interval_secs() -> u64 {
    60
}
fn default_row_group_rows() -> usize {
    128 * 1024
}
fn default_zstd_level() -> i32 {
    // Level 1: on the benchmark's events, 0.8 % larger files than level 3 for ~10 % less
    // ingest CPU (bench/run.sh); raise it for cold data.
    1
}

/// One transform. The keys a transform takes depend on its `type`; `validate` checks that
/// each key given belongs to that type (so spans survive, which an internally tagged serde
/// enum would lose).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTransform {
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    #[serde(default)]
    pub query: Option<Spanned<String>>,
    #[serde(default)]
    pub predicate: Option<Spanned<String>>,
    #[serde(default)]
    pub column: Option<Spanned<String>>,
    #[serde(default)]
    pub expr: Option<Spanned<String>>,
    /// `select`/`hash`: a list of names; `rename`/`cast`: a table name → new name / type.
    #[serde(default)]
    pub columns: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub salt: Option<Spanned<String>>,
}
