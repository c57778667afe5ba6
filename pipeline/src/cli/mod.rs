//! The `tributary` command line: a thin front door over the library.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

mod args;
mod serverless;

pub use args::{CatalogCommand, Cli, Command, DeployCommand, LogFormat, SchemaCommand};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::lake::{self, Lake};
use crate::query::{OutputFormat, QueryEngine, write_result};
use crate::runtime::{RunOptions, RunSummary, run_pipeline};

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
            serverless::run_stage(
                &cli,
                pipelines,
                *idle_exit,
                *stage,
                *min_workers,
                *max_workers,
            )
            .await
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
            dialect,
        } => {
            let (lake, mut limits) = open_lake_and_limits(&cli).await?;
            if let Some(d) = dialect {
                limits.dialect = *d;
            }
            if let Some(t) = timeout {
                // 0 = never, as `query.timeout_secs`.
                limits.timeout = match std::time::Duration::try_from_secs_f64(*t) {
                    Ok(d) if d.is_zero() => None,
                    Ok(d) => Some(d),
                    Err(_) => {
                        return Err(Error::Usage(format!(
                            "--timeout {t}: seconds, a number ≥ 0 (0 = no timeout)"
                        )));
                    }
                };
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
        Command::Sql { format, dialect } => {
            if *format == OutputFormat::Parquet {
                return Err(Error::Usage("the prompt writes table, csv or json".into()));
            }
            let (lake, mut limits) = open_lake_and_limits(&cli).await?;
            if let Some(d) = dialect {
                limits.dialect = *d;
            }
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
                    let s = crate::jobs::Scheduler::for_project(&config, &lake)?;
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
                (
                    lake,
                    Default::default(),
                    crate::config::ServerConfig::default(),
                )
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
                queue: server.queue,
                reuse_max_age: server.reuse_results,
                flight_bind: Some(flight_bind.unwrap_or(server.flight_bind)),
                retention: crate::server::Retention {
                    results: server.results_retention,
                    history: server.history_retention,
                },
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
        } => serverless::deploy_sam(&cli, output, code_uri, *query_function).await,
        Command::Lambda { handler } => {
            let config = load(&cli).await?;
            let lake = Lake::open(&config.project.lake, &config.storage.s3).await?;
            crate::lambda::serve(config, lake, *handler).await?;
            Ok(0)
        }
        Command::Package { binary, output } => {
            serverless::package(&cli, binary.as_deref(), output).await
        }
        Command::Invoke { event, handler } => serverless::invoke(&cli, event, *handler).await,
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
    print_query(&engine, q).await?;
    if engine.tables().iter().any(|t| t == "orders_dlq") {
        print_query(
            &engine,
            "SELECT error_kind, count(*) AS records FROM orders_dlq GROUP BY error_kind ORDER BY error_kind",
        )
        .await?;
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
        print_query(
            &engine,
            "SELECT dt, sum(orders) AS orders, round(sum(revenue), 2) AS revenue FROM daily_revenue GROUP BY dt ORDER BY dt",
        )
        .await?;
    }
    println!(
        "\nlake: {}   (try `tributary tables`, `tributary jobs list`)",
        lake.display()
    );
    Ok(())
}

/// Prints a query as the command that would run it, then its result as a table (the demo).
async fn print_query(engine: &QueryEngine, q: &str) -> Result<()> {
    println!("\n$ tributary query \"{q}\"");
    write_result(
        &engine.sql(q).await?,
        OutputFormat::Table,
        &mut std::io::stdout().lock(),
    )
}
