//! The `tributary` command line: a thin front door over the library.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::lake::{self, Lake};
use crate::query::{OutputFormat, QueryEngine, write_result};
use crate::runtime::{RunOptions, RunSummary, run_pipeline};

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
    },
    /// Interactive SQL over the lake (history, multi-line, \\d); runs stdin if piped.
    Sql {
        #[arg(long, short, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
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

/// Runs a parsed command line; `Ok(code)` is the process exit code.
pub async fn execute(cli: Cli) -> Result<i32> {
    match &cli.command {
        Command::Validate => {
            let config = load(&cli).await?;
            check_existing_tables(&config).await?;
            println!("{}: ok", config.path.display());
            for p in &config.pipelines {
                use tributary_connectors::SourceKind;
                let inputs = match &p.source {
                    SourceKind::File(src) => match src.list() {
                        Ok(files) if files.is_empty() => {
                            format!("no files match `{}` yet", src.path)
                        }
                        Ok(files) => format!("{} input files", files.len()),
                        Err(e) => format!("input not listable: {e}"),
                    },
                    SourceKind::Kinesis(k) => format!("stream `{}`", k.stream),
                    SourceKind::S3(s) => format!("objects under {}", s.url),
                };
                println!(
                    "  pipeline {:<16} {} ({inputs}) → table {} ({} transforms, on_bad_record = {:?}, partitions [{}])",
                    p.name,
                    p.source.name(),
                    p.table.name,
                    p.transforms.len(),
                    p.on_bad_record,
                    p.table.partition_columns().join(", ")
                );
            }
            for j in &config.jobs {
                let when = match (&j.schedule, &j.schedule_text) {
                    (Some(s), Some(text)) => match s.next_after(chrono::Utc::now(), j.tz) {
                        Some(n) => format!(
                            "{text} {} (next {})",
                            j.tz,
                            n.with_timezone(&j.tz).format("%Y-%m-%d %H:%M %Z")
                        ),
                        None => format!("{text} {} (no future slot)", j.tz),
                    },
                    _ => format!("after {}", j.depends_on.join(", ")),
                };
                println!(
                    "  job      {:<16} {} → table {} ({when})",
                    j.name,
                    j.task.kind(),
                    j.task.target()
                );
            }
            Ok(0)
        }
        Command::Run {
            pipelines,
            idle_exit,
            stage: Some(stage),
            min_workers,
            max_workers,
            ..
        } => {
            let config = load(&cli).await?;
            let [name] = pipelines.as_slice() else {
                return Err(Error::Usage(
                    "--stage runs one stage of one pipeline: name exactly one".into(),
                ));
            };
            let p = config.pipeline(name).map_err(Error::Usage)?;
            let lake = Lake::open(&config.project.lake, &config.storage.s3).await?;
            let idle = idle_exit.map(|s| std::time::Duration::from_secs_f64(s.max(0.0)));
            let stop = stop_on_ctrl_c();
            use crate::runtime::staged::{self, StageKind};
            let summary = match stage {
                StageKind::Ingest => staged::ingest(p, &lake, stop).await?,
                StageKind::Transform => {
                    let min = min_workers.unwrap_or(p.transform_workers.0);
                    let opts = staged::TransformOptions {
                        min_workers: min,
                        max_workers: max_workers.unwrap_or(p.transform_workers.1).max(min),
                        stop,
                        idle_exit: idle,
                    };
                    staged::transform(p, &lake, &opts).await?
                }
                StageKind::Sink => staged::sink(p, &lake, stop, idle).await?,
            };
            println!("{}: {summary}", p.name);
            Ok(0)
        }
        Command::Run {
            pipelines,
            idle_exit,
            metrics_addr,
            ..
        } => {
            let config = load(&cli).await?;
            let idle = idle_exit.map(|s| std::time::Duration::from_secs_f64(s.max(0.0)));
            let metrics = match metrics_addr {
                Some(addr) => {
                    let m = Arc::new(crate::metrics::Metrics::default());
                    let bound = crate::metrics::serve(*addr, m.clone()).await?;
                    eprintln!("metrics on http://{bound}/metrics");
                    Some(m)
                }
                None => None,
            };
            let summaries = run(&cli, &config, pipelines, idle, metrics).await?;
            for s in summaries {
                println!("{s}");
            }
            Ok(0)
        }
        Command::Query {
            sql,
            format,
            output,
            timeout,
            max_scanned_mb,
            stats,
        } => {
            let (lake, mut limits) = open_lake_and_limits(&cli).await?;
            if let Some(t) = timeout {
                limits.timeout = Some(std::time::Duration::from_secs_f64(t.max(0.001)));
            }
            if let Some(mb) = max_scanned_mb {
                limits.max_bytes_scanned = (*mb > 0).then(|| mb.saturating_mul(1 << 20));
            }
            let engine = QueryEngine::open_with(&lake, &limits).await?;
            let result = engine.sql(sql).await?;
            if *stats {
                eprintln!(
                    "{} rows, {} scanned in {} files ({} pruned), {:.3} s",
                    result.num_rows(),
                    human_bytes(result.bytes_scanned),
                    result.files_scanned,
                    result.files_pruned,
                    result.elapsed.as_secs_f64()
                );
            }
            match output {
                Some(path) => {
                    let mut f = std::fs::File::create(path)
                        .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
                    write_result(&result, *format, &mut f)?;
                    eprintln!("wrote {} rows to {}", result.num_rows(), path.display());
                }
                None => {
                    if *format == OutputFormat::Parquet {
                        return Err(Error::Usage("--format parquet needs --output FILE".into()));
                    }
                    let stdout = std::io::stdout();
                    write_result(&result, *format, &mut stdout.lock())?;
                }
            }
            Ok(0)
        }
        Command::Send {
            stream,
            files,
            generate,
            partition_key,
            aggregate,
            create,
        } => {
            let aws = if cli.config.exists() {
                load(&cli).await?.storage.kinesis
            } else {
                Default::default()
            };
            let opts = crate::send::SendOptions {
                stream: stream.clone(),
                files: files.clone(),
                generate: *generate,
                partition_key: partition_key.clone(),
                aggregate: *aggregate,
                create_shards: *create,
            };
            let stats = crate::send::send(&aws, &opts).await?;
            println!("{}", crate::send::describe(&stats));
            Ok(0)
        }
        Command::Sql { format } => {
            if *format == OutputFormat::Parquet {
                return Err(Error::Usage("the prompt writes table, csv or json".into()));
            }
            let (lake, limits) = open_lake_and_limits(&cli).await?;
            let engine = QueryEngine::open_with(&lake, &limits).await?;
            let history = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."))
                .join(".tributary_history");
            crate::repl::run(engine, *format, history).await
        }
        Command::Serve {
            bind,
            flight_bind,
            no_scheduler,
        } => {
            let stop = stop_on_ctrl_c();
            let (lake, limits, server) = if cli.config.exists() {
                let config = load(&cli).await?;
                let lake = Lake::open(&config.project.lake, &config.storage.s3).await?;
                if !*no_scheduler && config.jobs.iter().any(|j| j.enabled) {
                    let s = crate::jobs::Scheduler::new(
                        lake.clone(),
                        config.query.clone(),
                        config.jobs.clone(),
                        config.scheduler.max_concurrent_runs,
                        config.scheduler.grace,
                    )?;
                    let stop = stop.clone();
                    eprintln!("scheduler: {} jobs", config.jobs.len());
                    tokio::spawn(async move {
                        let until = async move {
                            while !stop.load(Ordering::Relaxed) {
                                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                            }
                        };
                        if let Err(e) = s.run_forever(until).await {
                            tracing::error!(error = %e, "the job scheduler stopped");
                        }
                    });
                }
                (lake, config.query, config.server)
            } else {
                let lake =
                    Lake::open(cli.lake.as_deref().unwrap_or("lake"), &Default::default()).await?;
                let server = crate::config::ServerConfig {
                    bind: std::net::SocketAddr::from(([127, 0, 0, 1], 8484)),
                    token_env: "TRIBUTARY_TOKEN".into(),
                    concurrency: 4,
                    reuse_results: None,
                    flight_bind: std::net::SocketAddr::from(([127, 0, 0, 1], 8485)),
                };
                (lake, Default::default(), server)
            };
            let token = std::env::var(&server.token_env)
                .ok()
                .filter(|t| !t.trim().is_empty())
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "the query API needs a bearer token: set the environment variable {} (clients send `Authorization: Bearer <token>`)",
                        server.token_env
                    ))
                })?;
            let shutdown = async move {
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            };
            let settings = crate::server::ServerSettings {
                bind: bind.unwrap_or(server.bind),
                token: token.trim().to_string(),
                concurrency: server.concurrency,
                reuse_max_age: server.reuse_results,
                flight_bind: Some(flight_bind.unwrap_or(server.flight_bind)),
            };
            crate::server::serve(lake, limits, settings, shutdown).await?;
            Ok(0)
        }
        Command::Jobs { command } => {
            let config = load(&cli).await?;
            let lake = Lake::open(&config.project.lake, &config.storage.s3).await?;
            crate::jobs::cli::execute(&config, &lake, command).await
        }
        Command::Scheduler { once, now } => {
            let config = load(&cli).await?;
            let lake = Lake::open(&config.project.lake, &config.storage.s3).await?;
            let stop = stop_on_ctrl_c();
            let shutdown = async move {
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            };
            crate::jobs::cli::scheduler(&config, &lake, *once, *now, shutdown).await
        }
        Command::Deploy {
            command:
                DeployCommand::Sam {
                    output,
                    code_uri,
                    query_function,
                },
        } => {
            let config = load(&cli).await?;
            let t = crate::deploy::sam_template(
                &config,
                &crate::deploy::SamOptions {
                    code_uri: code_uri.clone(),
                    query_function: *query_function,
                },
            )?;
            let text = serde_json::to_string_pretty(&t)
                .map_err(|e| Error::Internal(format!("template: {e}")))?;
            std::fs::write(output, text + "\n")
                .map_err(|e| Error::io(format!("cannot write {}", output.display()), e))?;
            let functions = t["Resources"]
                .as_object()
                .map(|r| {
                    r.values()
                        .filter(|v| v["Type"] == "AWS::Serverless::Function")
                        .count()
                })
                .unwrap_or(0);
            println!("wrote {} ({functions} functions)", output.display());
            Ok(0)
        }
        Command::Lambda { handler } => {
            let config = load(&cli).await?;
            let lake = Lake::open(&config.project.lake, &config.storage.s3).await?;
            crate::lambda::serve(config, lake, *handler).await?;
            Ok(0)
        }
        Command::Package { binary, output } => {
            let config = load(&cli).await?;
            let binary = match binary {
                Some(b) => b.clone(),
                None => std::env::current_exe()
                    .map_err(|e| Error::io("cannot find this executable".to_string(), e))?,
            };
            let p = crate::package::package(
                &config,
                &crate::package::PackageOptions {
                    binary,
                    output: output.clone(),
                },
            )?;
            let glibc = p
                .glibc
                .map(|(a, b)| format!("glibc {a}.{b}"))
                .unwrap_or_else(|| "static".into());
            println!(
                "wrote {} ({} files, {:.1} MiB; bootstrap: {}, {glibc})",
                output.display(),
                p.files.len(),
                p.bytes as f64 / 1048576.0,
                config.lambda.architecture
            );
            Ok(0)
        }
        Command::Invoke { event, handler } => {
            let config = load(&cli).await?;
            let lake = Lake::open(&config.project.lake, &config.storage.s3).await?;
            let text = std::fs::read_to_string(event)
                .map_err(|e| Error::io(format!("cannot read {}", event.display()), e))?;
            let value: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| Error::Usage(format!("{} is not JSON: {e}", event.display())))?;
            let answer = crate::lambda::handle(&config, &lake, &value, *handler).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&answer)
                    .map_err(|e| Error::Internal(format!("answer: {e}")))?
            );
            Ok(0)
        }
        Command::Catalog {
            command:
                CatalogCommand::Export {
                    format,
                    database,
                    location_prefix,
                },
        } => {
            let lake = open_lake(&cli).await?;
            let opts = crate::catalog::ExportOptions {
                format: *format,
                database: database.clone(),
                location_prefix: location_prefix.clone(),
            };
            print!("{}", crate::catalog::export(&lake, &opts).await?);
            Ok(0)
        }
        Command::Status => {
            let config = load(&cli).await?;
            let lake = Lake::open(&config.project.lake, &config.storage.s3).await?;
            print!(
                "{}",
                crate::status::render(&crate::status::status(&config, &lake).await?)
            );
            Ok(0)
        }
        Command::Tables => {
            let lake = open_lake(&cli).await?;
            print_tables(&lake, &mut std::io::stdout()).await?;
            Ok(0)
        }
        Command::Schema {
            command: SchemaCommand::Infer { file, name, sample },
        } => {
            let f = std::fs::File::open(file)
                .map_err(|e| Error::io(format!("cannot open {}", file.display()), e))?;
            let name = name.clone().unwrap_or_else(|| {
                file.file_stem()
                    .map(|s| {
                        s.to_string_lossy()
                            .split('.')
                            .next()
                            .unwrap_or("table")
                            .replace('-', "_")
                    })
                    .unwrap_or_else(|| "table".into())
            });
            let inferred = crate::schema::infer::infer(std::io::BufReader::new(f), &name, *sample)
                .map_err(|e| {
                    Error::io(format!("cannot infer a schema from {}", file.display()), e)
                })?;
            print!("{}", inferred.toml);
            Ok(0)
        }
        Command::Demo { records, files } => {
            demo(&cli, *records, *files).await?;
            Ok(0)
        }
    }
}

/// Refuses schema files whose changes the tables already in the lake cannot take (a
/// missing local lake has no tables: nothing to check, and nothing is created).
async fn check_existing_tables(config: &Config) -> Result<()> {
    let local = !config.project.lake.starts_with("s3://");
    if local && !Path::new(&config.project.lake).exists() {
        return Ok(());
    }
    let lake = Lake::open(&config.project.lake, &config.storage.s3).await?;
    let mut diags = crate::diag::Diagnostics::default();
    for p in &config.pipelines {
        let Some(table) = lake.load(&p.table.name).await? else {
            continue;
        };
        let verdict = lake::schema_verdict(
            &p.table.name,
            &table,
            &p.table.table_schema(),
            &p.table.partition_columns(),
        )?;
        match verdict {
            lake::evolution::Verdict::Refused(refusals) => {
                for r in refusals {
                    let text = &p.table.file.text;
                    let needle = format!("\"{}\"", r.column);
                    let span = text
                        .find(&format!("name = {needle}"))
                        .map(|i| {
                            let at = i + "name = ".len();
                            at..at + needle.len()
                        })
                        .unwrap_or(0..0);
                    diags.push(
                        p.table
                            .file
                            .error(span, r.message)
                            .with_hint(format!("migration: {}", r.migration)),
                    );
                }
            }
            lake::evolution::Verdict::AddColumns(f) => {
                let names: Vec<&str> = f.iter().map(|f| f.name().as_str()).collect();
                println!(
                    "  table    {:<16} gains nullable columns [{}] on the next run (old rows read them as null)",
                    p.table.name,
                    names.join(", ")
                );
            }
            lake::evolution::Verdict::Same => {}
        }
    }
    if diags.is_empty() {
        Ok(())
    } else {
        Err(Error::Config(diags))
    }
}

async fn load(cli: &Cli) -> Result<Config> {
    Config::load(&cli.config, cli.lake.as_deref())
        .await
        .map_err(Error::Config)
}

/// The lake and query limits of the config if there is one (else `--lake` or `./lake`, no
/// limits).
async fn open_lake_and_limits(cli: &Cli) -> Result<(Lake, crate::query::QueryLimits)> {
    if cli.config.exists() {
        let config = load(cli).await?;
        let lake = Lake::open(&config.project.lake, &config.storage.s3).await?;
        return Ok((lake, config.query));
    }
    let lake = Lake::open(cli.lake.as_deref().unwrap_or("lake"), &Default::default()).await?;
    Ok((lake, Default::default()))
}

/// The lake of the config if there is one, else `--lake`, else `./lake`.
async fn open_lake(cli: &Cli) -> Result<Lake> {
    if cli.config.exists() {
        let config = load(cli).await?;
        return Lake::open(&config.project.lake, &config.storage.s3).await;
    }
    Lake::open(cli.lake.as_deref().unwrap_or("lake"), &Default::default()).await
}

fn stop_on_ctrl_c() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("stopping: finishing and committing what was read (Ctrl-C again to abort)");
            s.store(true, Ordering::Relaxed);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    // SIGTERM (service managers, `kill`) stops gracefully too.
    #[cfg(unix)]
    {
        let s = stop.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            if let Ok(mut term) = signal(SignalKind::terminate())
                && term.recv().await.is_some()
            {
                eprintln!("SIGTERM: finishing and committing what was read");
                s.store(true, Ordering::Relaxed);
            }
        });
    }
    stop
}

async fn run(
    cli: &Cli,
    config: &Config,
    names: &[String],
    idle_exit: Option<std::time::Duration>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
) -> Result<Vec<RunSummary>> {
    for n in names {
        config.pipeline(n).map_err(Error::Usage)?;
    }
    let lake = Lake::open(&config.project.lake, &config.storage.s3).await?;
    let opts = RunOptions {
        progress: !cli.no_progress,
        stop: stop_on_ctrl_c(),
        idle_exit,
        metrics,
        ..Default::default()
    };
    let mut out = Vec::new();
    for p in &config.pipelines {
        if !names.is_empty() && !names.contains(&p.name) {
            continue;
        }
        out.push(run_pipeline(p, &lake, &opts).await?);
    }
    Ok(out)
}

/// Writes the `tributary tables` listing.
pub async fn print_tables(lake: &Lake, out: &mut dyn Write) -> Result<()> {
    let io = |e| Error::io("cannot write output", e);
    let names = lake.tables().await?;
    if names.is_empty() {
        writeln!(
            out,
            "no tables in {} yet: run a pipeline (`tributary run`)",
            lake.display()
        )
        .map_err(io)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<24} {:>12} {:>7} {:>12} {:>10} {:>8}  last commit",
        "table", "rows", "files", "bytes", "partitions", "version"
    )
    .map_err(io)?;
    for name in names {
        let Some(table) = lake.load(&name).await? else {
            continue;
        };
        let info = lake::table_info(&name, &table).await?;
        let when = info
            .last_commit_ms
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "{:<24} {:>12} {:>7} {:>12} {:>10} {:>8}  {}",
            info.name,
            info.rows,
            info.files,
            human_bytes(info.bytes),
            info.partitions,
            info.version,
            when
        )
        .map_err(io)?;
    }
    Ok(())
}

fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

async fn demo(cli: &Cli, records: u64, files: usize) -> Result<()> {
    let config_dir = cli
        .config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let data = config_dir.join("data").join("orders");
    eprintln!(
        "generating {records} sample order events in {} ...",
        data.display()
    );
    let g = crate::demo::generate(&data, records, files, 42)?;
    eprintln!(
        "  {} files, {} good + {} bad lines, {:.1} MB",
        g.files,
        g.good,
        g.bad,
        g.bytes as f64 / 1e6
    );
    crate::demo::generate_customers(&config_dir.join("data").join("customers"), 20_000, 7)?;
    let config = load(cli).await?;
    let summaries = run(
        cli,
        &config,
        &["orders".to_string(), "customers".to_string()],
        None,
        None,
    )
    .await?;
    for s in &summaries {
        println!("{s}");
    }
    let lake = Lake::open(&config.project.lake, &config.storage.s3).await?;
    let engine = QueryEngine::open(&lake).await?;
    let q = "SELECT dt, count(*) AS orders, round(sum(total_amount), 2) AS revenue, \
             sum(CASE WHEN value_band = 'high' THEN 1 ELSE 0 END) AS high_value \
             FROM orders GROUP BY dt ORDER BY dt";
    println!("\n$ tributary query \"{q}\"");
    let stdout = std::io::stdout();
    write_result(
        &engine.sql(q).await?,
        OutputFormat::Table,
        &mut stdout.lock(),
    )?;
    if engine.tables().iter().any(|t| t == "orders_dlq") {
        let q = "SELECT error_kind, count(*) AS records FROM orders_dlq GROUP BY error_kind ORDER BY error_kind";
        println!("\n$ tributary query \"{q}\"");
        write_result(
            &engine.sql(q).await?,
            OutputFormat::Table,
            &mut stdout.lock(),
        )?;
    }
    // The demo's SQL jobs, once each in dependency order (the scheduler would fire them on
    // their schedules: `tributary scheduler`).
    let mut done: Vec<String> = Vec::new();
    while let Some(job) = config.jobs.iter().find(|j| {
        matches!(j.task, crate::jobs::Task::Sql(_))
            && !done.contains(&j.name)
            && j.depends_on.iter().all(|d| done.contains(d))
    }) {
        let rec = crate::jobs::run::execute(
            &lake,
            &config.query,
            job,
            crate::jobs::run::Scope::Incremental,
            &crate::jobs::run::Trigger::new("manual", None),
        )
        .await?;
        println!(
            "job {:<18} {} ({} rows → {})",
            job.name,
            rec.state.as_str(),
            rec.rows_written,
            job.task.target()
        );
        done.push(job.name.clone());
    }
    if done.iter().any(|j| j == "daily_revenue") {
        let engine = QueryEngine::open(&lake).await?;
        let q = "SELECT dt, sum(orders) AS orders, round(sum(revenue), 2) AS revenue FROM daily_revenue GROUP BY dt ORDER BY dt";
        println!("\n$ tributary query \"{q}\"");
        write_result(
            &engine.sql(q).await?,
            OutputFormat::Table,
            &mut stdout.lock(),
        )?;
    }
    println!(
        "\nlake: {}   (try `tributary tables`, `tributary jobs list`)",
        lake.display()
    );
    Ok(())
}
