//! The command line's shape: every command, argument and flag (clap derive).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::query::OutputFormat;

#[derive(Debug, Parser)]
#[command(
    name = "tributary",
    version,
    about = "Serverless data pipelines into a Delta Lake, queried with SQL"
)]
pub struct Cli {
    /// Project config file.
    #[arg(
        long,
        short,
        global = true,
        env = "TRIBUTARY_CONFIG",
        default_value = "tributary.toml"
    )]
    pub config: PathBuf,
    /// Override the project's lake location (a folder).
    #[arg(long, global = true, env = "TRIBUTARY_LAKE")]
    pub lake: Option<String>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, env = "TRIBUTARY_LOG_FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// More logging (-v: debug, -vv: trace).
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Never show a progress bar.
    #[arg(long, global = true)]
    pub no_progress: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run pipelines (all of the config's, or the named ones): files and S3 prefixes to the
    /// end of their input, streams until Ctrl-C / SIGTERM (or --idle-exit).
    Run {
        /// Pipeline names; default all.
        pipelines: Vec<String>,
        /// Stop once no new record has arrived for this many seconds (streams, polling S3).
        #[arg(long, value_name = "SECS")]
        idle_exit: Option<f64>,
        /// Run one stage of one pipeline as its own process, handing over through the lake's
        /// staging area (file and S3 sources): ingest → transform → sink.
        #[arg(long, value_enum, requires = "pipelines")]
        stage: Option<crate::runtime::staged::StageKind>,
        /// Transform stage: the fewest workers kept (the pool grows with the backlog;
        /// default: `[pipelines.NAME.stages.transform] min_workers`, else 1).
        #[arg(long, value_name = "N")]
        min_workers: Option<usize>,
        /// Transform stage: the most workers (default: `max_workers` there, else the
        /// pipeline's parallelism).
        #[arg(long, value_name = "N")]
        max_workers: Option<usize>,
        /// Serve Prometheus metrics at http://ADDR/metrics while running (e.g. 127.0.0.1:9898).
        #[arg(long, value_name = "ADDR")]
        metrics_addr: Option<std::net::SocketAddr>,
    },
    /// Put NDJSON records on a Kinesis stream (PutRecords, failed records re-sent).
    Send {
        /// Stream name.
        #[arg(long)]
        stream: String,
        /// NDJSON files or folders (plain, .gz, .zst).
        files: Vec<PathBuf>,
        /// Generate this many demo order events instead.
        #[arg(long, value_name = "N", conflicts_with = "files")]
        generate: Option<u64>,
        /// JSON field used as the partition key (default: random).
        #[arg(long, value_name = "FIELD")]
        partition_key: Option<String>,
        /// Pack N records into each Kinesis record in the KPL aggregation format.
        #[arg(long, value_name = "N", default_value_t = 0)]
        aggregate: usize,
        /// Create the stream with N shards first if it does not exist.
        #[arg(long, value_name = "N")]
        create: Option<i32>,
    },
    /// Check config, schemas and transforms; runs nothing.
    Validate,
    /// Run a SQL query over the lake.
    Query {
        sql: String,
        #[arg(long, short, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
        /// Write the result to a file instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Cancel the query after this many seconds (default: query.timeout_secs).
        #[arg(long, value_name = "SECS")]
        timeout: Option<f64>,
        /// Cancel the query once it would read more than this many MB (default:
        /// query.max_scanned_mb).
        #[arg(long, value_name = "MB")]
        max_scanned_mb: Option<u64>,
        /// Print rows, bytes scanned and time on stderr.
        #[arg(long)]
        stats: bool,
        /// Read the SQL as `trino` (Athena's) or `datafusion` (default: query.dialect).
        #[arg(long, value_parser = parse_dialect)]
        dialect: Option<crate::query::trino::Dialect>,
    },
    /// Interactive SQL over the lake (history, multi-line, \\d); runs stdin if piped.
    Sql {
        #[arg(long, short, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
        /// Read the SQL as `trino` (Athena's) or `datafusion` (default: query.dialect).
        #[arg(long, value_parser = parse_dialect)]
        dialect: Option<crate::query::trino::Dialect>,
    },
    /// Serve the query API over HTTP (Athena-shaped; bearer token from [server] or
    /// TRIBUTARY_TOKEN).
    Serve {
        /// Address to listen on (default [server] bind, 127.0.0.1:8484).
        #[arg(long)]
        bind: Option<std::net::SocketAddr>,
        /// Address for Arrow Flight SQL (default [server] flight_bind, 127.0.0.1:8485).
        #[arg(long)]
        flight_bind: Option<std::net::SocketAddr>,
        /// Do not run the job scheduler alongside (it runs when the project has jobs).
        #[arg(long)]
        no_scheduler: bool,
    },
    /// List the lake's tables: rows, files, bytes, partitions, last commit.
    Tables,
    /// Each pipeline's table version, last commit, rows, dead letters and lag (input not yet
    /// committed; per Kinesis shard, milliseconds behind the stream's tip).
    Status,
    /// Scheduled ETL jobs (jobs/*.toml): list, run, status, history, backfill, reset.
    Jobs {
        #[command(subcommand)]
        command: crate::jobs::cli::JobsCommand,
    },
    /// Fire jobs on their schedules until Ctrl-C (runs left by a crashed scheduler are
    /// marked FAILED; no slot runs twice).
    Scheduler {
        /// One pass: run what is due now, wait for it, exit.
        #[arg(long)]
        once: bool,
        /// One pass as if the time were TIME (RFC 3339): for dry runs and tests.
        #[arg(long, value_name = "TIME")]
        now: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Run a Lambda handler locally on an event (S3 notification, scheduled event), against
    /// the project's lake; prints the handler's JSON answer.
    Invoke {
        /// The event, as Lambda would deliver it (see events/ for samples).
        #[arg(long, value_name = "FILE")]
        event: PathBuf,
        /// The handler (default: told from the event's shape).
        #[arg(long, value_enum)]
        handler: Option<crate::lambda::HandlerKind>,
    },
    /// Serve the Lambda Runtime API: what a deployed function's `bootstrap` runs (a binary
    /// named `bootstrap` starts this with no arguments). Config, clients and the query
    /// context are made once per container.
    Lambda {
        /// The handler (default: told from each event's shape).
        #[arg(long, value_enum, env = "TRIBUTARY_HANDLER")]
        handler: Option<crate::lambda::HandlerKind>,
    },
    /// Build the function zip for Lambda's provided.al2023 runtime: the binary as
    /// `bootstrap`, the config, schemas and jobs. The binary is checked first (ELF for the
    /// configured architecture, glibc no newer than 2.34).
    Package {
        /// The Linux binary to ship (default: this one), e.g. from `cargo lambda build --release`.
        #[arg(long, value_name = "FILE")]
        binary: Option<PathBuf>,
        /// Where to write the zip (what `deploy sam --code-uri` points at).
        #[arg(long, short, default_value = "dist/tributary-lambda.zip")]
        output: PathBuf,
    },
    /// Deployment artifacts.
    Deploy {
        #[command(subcommand)]
        command: DeployCommand,
    },
    /// Export the lake's tables to other engines' catalogs.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Schema tools.
    Schema {
        #[command(subcommand)]
        command: SchemaCommand,
    },
    /// Generate sample order events, run the demo `orders` pipeline, query the result.
    Demo {
        /// Good records to generate (about 1 % bad lines are added).
        #[arg(long, default_value_t = 200_000)]
        records: u64,
        /// Number of input files.
        #[arg(long, default_value_t = 4)]
        files: usize,
    },
}

impl Command {
    /// Commands that answer queries over the lake (the binary keeps freed memory for them).
    pub fn serves_queries(&self) -> bool {
        matches!(
            self,
            Command::Query { .. } | Command::Sql { .. } | Command::Serve { .. }
        )
    }
}

#[derive(Debug, Subcommand)]
pub enum DeployCommand {
    /// Write an AWS SAM template: a function per Kinesis/S3 pipeline and per scheduled job,
    /// each with a least-privilege role (the project's lake must be on S3).
    Sam {
        /// Where to write the template (JSON; `sam deploy --template-file FILE`).
        #[arg(long, short, default_value = "template.json")]
        output: PathBuf,
        /// The function code: the `bootstrap` zip for provided.al2023.
        #[arg(long, default_value = "dist/tributary-lambda.zip")]
        code_uri: String,
        /// Add a query function: the HTTP query API behind a Function URL, reading every
        /// table, guarded by a bearer token given as the stack parameter QueryToken.
        #[arg(long)]
        query_function: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Print the DDL that registers every lake table (Delta) in Athena/Glue, Trino or Spark.
    Export {
        #[arg(long, value_enum, default_value_t = crate::catalog::CatalogFormat::Athena)]
        format: crate::catalog::CatalogFormat,
        /// Database (Glue database, Trino schema) to create the tables in.
        #[arg(long, default_value = "tributary")]
        database: String,
        /// Location to use instead of the lake's own (e.g. s3://bucket/prefix after copying
        /// a local lake to S3).
        #[arg(long, value_name = "URL")]
        location_prefix: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Print a schema TOML (for schemas/) inferred from sample NDJSON.
    Infer {
        file: PathBuf,
        /// Table name to put in the schema (default: the file's stem).
        #[arg(long)]
        name: Option<String>,
        /// Records to sample.
        #[arg(long, default_value_t = 10_000)]
        sample: usize,
    },
}

fn parse_dialect(s: &str) -> Result<crate::query::trino::Dialect, String> {
    s.parse()
}
