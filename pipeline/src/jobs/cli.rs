//! `tributary jobs …` and `tributary scheduler`.

use chrono::{DateTime, NaiveDate, Utc};
use clap::Subcommand;

use super::history::{self, RunState};
use super::run::{self, Scope, Trigger};
use super::{Job, Scheduler};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::query::{OutputFormat, QueryResult, write_result};

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// The project's jobs with their schedules and next fire times.
    List {
        /// Compute next fire times from this time instead of now (RFC 3339).
        #[arg(long, value_name = "TIME")]
        now: Option<DateTime<Utc>>,
    },
    /// Run a job now (incremental: what arrived since its last successful run).
    Run {
        name: String,
        /// Read the sources in full (ignore the bookmarks; they move to the current versions).
        #[arg(long)]
        full: bool,
    },
    /// The latest run of every job.
    Status,
    /// A job's runs, newest first.
    History {
        name: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Rerun a job for each day in a range, one source partition (`backfill_column`) at a
    /// time; bookmarks are left alone.
    Backfill {
        name: String,
        #[arg(long, value_name = "DATE")]
        from: NaiveDate,
        #[arg(long, value_name = "DATE")]
        to: NaiveDate,
    },
    /// Forget a job's bookmarks: its next run reads its sources in full.
    Reset { name: String },
}

fn find<'a>(config: &'a Config, name: &str) -> Result<&'a Job> {
    config.jobs.iter().find(|j| j.name == name).ok_or_else(|| {
        Error::Usage(format!(
            "no job `{name}` in {}: {}",
            config.project.jobs_dir.display(),
            crate::diag::did_you_mean(name, config.jobs.iter().map(|j| j.name.as_str()))
        ))
    })
}

fn print_table(
    schema: arrow::datatypes::SchemaRef,
    batches: Vec<arrow::array::RecordBatch>,
) -> Result<()> {
    let result = QueryResult {
        schema,
        batches,
        bytes_scanned: 0,
        files_scanned: 0,
        files_pruned: 0,
        elapsed: Default::default(),
    };
    write_result(&result, OutputFormat::Table, &mut std::io::stdout().lock())
}

fn describe(r: &history::RunRecord) -> String {
    let took = r
        .ended_at
        .map(|e| {
            format!(
                " in {:.1} s",
                (e - r.started_at).num_milliseconds() as f64 / 1000.0
            )
        })
        .unwrap_or_default();
    let mut s = format!(
        "{} {} {} (attempt {}, {}{}): {} rows, {} bytes",
        r.job,
        r.run_id,
        r.state.as_str(),
        r.attempt,
        r.trigger,
        took,
        r.rows_written,
        r.bytes_written
    );
    if let Some(d) = &r.details {
        s.push_str(&format!(" {d}"));
    }
    if let Some(e) = &r.error {
        s.push_str(&format!("\n  error: {e}"));
    }
    s
}

/// Runs a `jobs` subcommand; returns the exit code.
pub async fn execute(config: &Config, lake: &Lake, cmd: &JobsCommand) -> Result<i32> {
    match cmd {
        JobsCommand::List { now } => {
            let now = now.unwrap_or_else(Utc::now);
            if config.jobs.is_empty() {
                println!("no jobs in {}", config.project.jobs_dir.display());
            }
            for j in &config.jobs {
                let mut next = Vec::new();
                if let Some(s) = &j.schedule {
                    let mut t = now;
                    for _ in 0..3 {
                        match s.next_after(t, j.tz) {
                            Some(n) => {
                                next.push(
                                    n.with_timezone(&j.tz)
                                        .format("%Y-%m-%d %H:%M %Z")
                                        .to_string(),
                                );
                                t = n;
                            }
                            None => break,
                        }
                    }
                }
                let when = match (&j.schedule_text, j.depends_on.is_empty()) {
                    (Some(s), true) => format!("{s} {}", j.tz),
                    (Some(s), false) => {
                        format!("{s} {} and after {}", j.tz, j.depends_on.join(", "))
                    }
                    (None, _) => format!("after {}", j.depends_on.join(", ")),
                };
                println!(
                    "{:<20} {:<13} → {:<20} {}{}",
                    j.name,
                    j.task.kind(),
                    j.task.target(),
                    when,
                    if j.enabled { "" } else { " (disabled)" }
                );
                if !next.is_empty() {
                    println!("{:<20} next: {}", "", next.join(", "));
                }
            }
            Ok(0)
        }
        JobsCommand::Run { name, full } => {
            let job = find(config, name)?;
            let scope = if *full {
                Scope::Full
            } else {
                Scope::Incremental
            };
            let rec = run::execute(
                lake,
                &config.query,
                job,
                scope,
                &Trigger::new("manual", None),
            )
            .await?;
            println!("{}", describe(&rec));
            Ok(if rec.state == RunState::Succeeded {
                0
            } else {
                1
            })
        }
        JobsCommand::Status => {
            let runs = history::latest_runs(lake, None, 10_000).await?;
            for j in &config.jobs {
                match runs.iter().find(|r| r.job == j.name) {
                    Some(r) => println!("{}", describe(r)),
                    None => println!("{} never ran", j.name),
                }
            }
            Ok(0)
        }
        JobsCommand::History { name, limit } => {
            find(config, name)?;
            match history::latest_runs_query(lake, Some(name), *limit).await? {
                Some((schema, batches)) => print_table(schema, batches)?,
                None => println!("no job has run yet"),
            }
            Ok(0)
        }
        JobsCommand::Backfill { name, from, to } => {
            let job = find(config, name)?;
            if to < from {
                return Err(Error::Usage(format!("--to {to} is before --from {from}")));
            }
            let mut failed = 0;
            let mut day = *from;
            while day <= *to {
                let rec = run::execute(
                    lake,
                    &config.query,
                    job,
                    Scope::Backfill(day),
                    &Trigger::new("backfill", None),
                )
                .await?;
                println!("{day}: {}", describe(&rec));
                if rec.state != RunState::Succeeded {
                    failed += 1;
                }
                day = day
                    .succ_opt()
                    .ok_or_else(|| Error::Usage("date out of range".into()))?;
            }
            Ok(if failed > 0 { 1 } else { 0 })
        }
        JobsCommand::Reset { name } => {
            let job = find(config, name)?;
            let n = run::reset_bookmarks(lake, job).await?;
            println!("{name}: {n} bookmarks reset; the next run reads its sources in full");
            Ok(0)
        }
    }
}

/// `tributary scheduler`: until Ctrl-C, or one pass (`--once`, `--now`).
pub async fn scheduler(
    config: &Config,
    lake: &Lake,
    once: bool,
    now: Option<DateTime<Utc>>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<i32> {
    let s = Scheduler::for_project(config, lake)?;
    if once || now.is_some() {
        let abandoned = s.recover().await?;
        if abandoned > 0 {
            println!("{abandoned} runs abandoned by an earlier scheduler marked FAILED");
        }
        let runs = s.tick(now.unwrap_or_else(Utc::now)).await?;
        if runs.is_empty() {
            println!("no job due");
        }
        for r in &runs {
            println!("{}", describe(r));
        }
        return Ok(0);
    }
    if config.jobs.is_empty() {
        return Err(Error::Usage(format!(
            "no jobs to schedule in {}",
            config.project.jobs_dir.display()
        )));
    }
    eprintln!("scheduler: {} jobs; Ctrl-C stops", config.jobs.len());
    s.run_forever(stop).await?;
    Ok(0)
}
