//! Running one job: the SQL over (incremental views of) the lake, written to the target in
//! its mode with the bookmarks in the same commit; timeouts, retries with backoff, and every
//! state change recorded in `job_runs`.

use std::sync::Arc;

use arrow::array::{Array as _, RecordBatch};
use arrow::datatypes::SchemaRef;
use chrono::{DateTime, NaiveDate, Utc};
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use deltalake::DeltaTable;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::protocol::{DeltaOperation, SaveMode};

use super::config::{Incremental, Job, SqlTask, Task, WriteMode};
use super::history::{self, RunRecord, RunState};
use super::incremental::{self as inc, bookmark_app_id};
use crate::error::{Error, ErrorClass, Result};
use crate::lake::Lake;
use crate::query::{QueryEngine, QueryLimits};

/// What a run reads of its incremental sources.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scope {
    /// What arrived since the last successful run (bookmarks), then move the bookmarks.
    Incremental,
    /// Everything; the bookmarks move to the current versions.
    Full,
    /// One day's partition of each incremental source; bookmarks untouched.
    Backfill(NaiveDate),
}

/// What one successful attempt did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub rows: u64,
    pub bytes: u64,
    pub target_version: Option<i64>,
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// How a run was started, for `job_runs`.
#[derive(Debug, Clone)]
pub struct Trigger {
    pub kind: &'static str,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub run_id: String,
    /// The scheduler process running it (its heartbeat tells whether it is alive).
    pub scheduler: Option<String>,
}

impl Trigger {
    pub fn new(kind: &'static str, scheduled_for: Option<DateTime<Utc>>) -> Self {
        Trigger {
            kind,
            scheduled_for,
            run_id: uuid::Uuid::new_v4().to_string(),
            scheduler: None,
        }
    }

    /// What a run's rows carry before it has details of its own: the scheduler running it.
    pub fn details(&self) -> Option<String> {
        self.scheduler
            .as_ref()
            .map(|s| serde_json::json!({ "scheduler": s }).to_string())
    }
}

/// A run's final record.
pub type Finished = RunRecord;

/// Runs a job to its end: attempts with the job's timeout, retries (not for errors in the
/// job itself: bad SQL does not improve with retrying), each state change in `job_runs`.
pub async fn execute(
    lake: &Lake,
    limits: &QueryLimits,
    job: &Job,
    scope: Scope,
    trigger: &Trigger,
) -> Result<Finished> {
    let started = Utc::now();
    let mut rec = RunRecord {
        job: job.name.clone(),
        run_id: trigger.run_id.clone(),
        attempt: 0,
        trigger: trigger.kind.to_string(),
        scheduled_for: trigger.scheduled_for,
        started_at: started,
        ended_at: None,
        state: RunState::Running,
        rows_written: 0,
        bytes_written: 0,
        target_version: None,
        details: trigger.details(),
        error: None,
    };
    for attempt in 1..=job.retries.saturating_add(1) {
        rec.attempt = attempt as i32;
        rec.state = RunState::Running;
        rec.ended_at = None;
        rec.error = None;
        history::record(lake, &rec).await?;
        tracing::info!(job = %job.name, run_id = %rec.run_id, attempt, trigger = trigger.kind, "job run started");
        let result = tokio::time::timeout(job.timeout, run_task(lake, limits, job, scope)).await;
        rec.ended_at = Some(Utc::now());
        let retryable = match result {
            Ok(Ok(mut out)) => {
                if let Some(s) = &trigger.scheduler {
                    out.details.insert("scheduler".into(), s.clone().into());
                }
                rec.state = RunState::Succeeded;
                rec.rows_written = out.rows as i64;
                rec.bytes_written = out.bytes as i64;
                rec.target_version = out.target_version;
                rec.details = Some(serde_json::Value::Object(out.details).to_string());
                history::record(lake, &rec).await?;
                tracing::info!(job = %job.name, run_id = %rec.run_id, rows = out.rows, "job run succeeded");
                return Ok(rec);
            }
            Ok(Err(e)) => {
                rec.state = RunState::Failed;
                rec.error = Some(without_backtrace(&e.to_string()));
                e.class() != ErrorClass::User
            }
            Err(_) => {
                rec.state = RunState::Timeout;
                rec.error = Some(format!(
                    "the run was cancelled after {} s (timeout_secs); nothing was committed",
                    job.timeout.as_secs_f64()
                ));
                true
            }
        };
        history::record(lake, &rec).await?;
        tracing::warn!(job = %job.name, run_id = %rec.run_id, attempt, state = rec.state.as_str(), error = rec.error.as_deref().unwrap_or(""), "job attempt failed");
        if !retryable || attempt > job.retries {
            break;
        }
        // Exponential backoff with full jitter, capped at 10 minutes.
        let base = job.retry_backoff.as_secs_f64() * 2f64.powi(attempt as i32 - 1);
        let wait = base.min(600.0) * (0.5 + fastrand::f64() / 2.0);
        tokio::time::sleep(std::time::Duration::from_secs_f64(wait)).await;
    }
    Ok(rec)
}

/// One attempt.
pub async fn run_task(
    lake: &Lake,
    limits: &QueryLimits,
    job: &Job,
    scope: Scope,
) -> Result<Outcome> {
    match &job.task {
        Task::Sql(t) => run_sql(lake, limits, &job.name, t, scope).await,
        other => super::maintenance::run(lake, other).await,
    }
}

async fn run_sql(
    lake: &Lake,
    limits: &QueryLimits,
    job: &str,
    t: &SqlTask,
    scope: Scope,
) -> Result<Outcome> {
    let mut engine = QueryEngine::open_tables(lake, limits, Some(&t.reads)).await?;
    let target = lake.load(&t.target).await?;
    if matches!(scope, Scope::Backfill(_)) && t.incremental.is_empty() {
        return Err(Error::Usage(format!(
            "job `{job}` names no [incremental] source tables, so a backfill cannot restrict what it reads to one partition"
        )));
    }
    let mut txns = Vec::new();
    let mut sources = serde_json::Map::new();
    let mut any_input = t.incremental.is_empty();
    for (name, how) in &t.incremental {
        let Some(src) = lake.load(name).await? else {
            return Err(Error::Usage(format!(
                "source table `{name}` of job `{job}` does not exist yet: run the pipeline that loads it first"
            )));
        };
        let to = src.version().map(|v| v as i64).unwrap_or(0);
        let app_id = bookmark_app_id(job, name);
        let current = inc::current_files(&src)?;
        let from = read_bookmark_for(scope, target.as_ref(), &app_id).await?;
        let files: Option<Vec<String>> = match scope {
            Scope::Full => None,
            Scope::Backfill(day) => {
                if !current
                    .iter()
                    .any(|(_, k)| k.iter().any(|(c, _)| *c == t.backfill_column))
                    && !current.is_empty()
                {
                    return Err(Error::Usage(format!(
                        "source table `{name}` is not partitioned by `{}` (backfill_column)",
                        t.backfill_column
                    )));
                }
                Some(inc::files_in_partition(
                    &current,
                    &t.backfill_column,
                    &day.to_string(),
                ))
            }
            Scope::Incremental => match from {
                None => None,
                Some(from) if from >= to => Some(vec![]),
                Some(from) => {
                    let ch = inc::changes(&src, name, from, to).await?;
                    Some(match how {
                        Incremental::NewRows => inc::new_files(&current, &ch),
                        Incremental::ChangedPartitions => inc::files_of_touched(&current, &ch),
                    })
                }
            },
        };
        sources.insert(
            name.clone(),
            serde_json::json!({
                "from_version": from,
                "to_version": to,
                "files": files.as_ref().map(|f| f.len()).unwrap_or(current.len()),
            }),
        );
        if files.as_ref().is_none_or(|f| !f.is_empty()) {
            any_input = true;
        }
        if let Some(files) = files {
            let n = files.len() as u64;
            let provider: Arc<dyn TableProvider> = if files.is_empty() {
                let schema = engine.table_schema(name).await?;
                Arc::new(MemTable::try_new(Arc::new(schema), vec![vec![]])?)
            } else {
                src.table_provider().with_file_paths(files).await?
            };
            engine.replace_table(name, provider, n)?;
        }
        if !matches!(scope, Scope::Backfill(_)) {
            txns.push(Transaction::new(app_id, to));
        }
    }
    let mut details = serde_json::Map::new();
    details.insert("sources".into(), serde_json::Value::Object(sources));
    if !any_input {
        details.insert(
            "skipped".into(),
            "no new data in the incremental sources".into(),
        );
        return Ok(Outcome {
            details,
            ..Default::default()
        });
    }
    // Appends and overwrites stream the query's output into the writer: an ETL of any size
    // runs in bounded memory. Partition overwrites and merges need the output's partitions
    // or keys first, so they collect it (their outputs are rollups and upserts).
    let target = match target {
        Some(table) if !matches!(t.mode, WriteMode::Append | WriteMode::Overwrite) => table,
        target => {
            let table = write_streaming(lake, job, t, target, txns, &engine).await?;
            details.insert("bytes_scanned".into(), engine.bytes_scanned().into());
            details.insert("streamed".into(), true.into());
            let version = table.version().map(|v| v as i64);
            let (rows, bytes) = match version {
                Some(v) => inc::commit_additions(&table, v).await?,
                None => (0, 0),
            };
            return Ok(Outcome {
                rows,
                bytes,
                target_version: version,
                details,
            });
        }
    };
    let result = engine.sql(&t.sql).await?;
    details.insert("bytes_scanned".into(), result.bytes_scanned.into());
    let rows = result.num_rows() as u64;
    let table = write_output(job, t, target, result.schema, result.batches, txns, &engine).await?;
    let version = table.version().map(|v| v as i64);
    let (_, bytes) = match version {
        Some(v) => inc::commit_additions(&table, v).await?,
        None => (0, 0),
    };
    Ok(Outcome {
        rows,
        bytes,
        target_version: version,
        details,
    })
}

async fn read_bookmark_for(
    scope: Scope,
    target: Option<&DeltaTable>,
    app_id: &str,
) -> Result<Option<i64>> {
    match scope {
        Scope::Incremental => inc::read_bookmark(target, app_id).await,
        _ => Ok(None),
    }
}

/// Writes a collected result to the existing target (partition overwrite or merge), with
/// `txns` in the same commit.
#[allow(clippy::too_many_arguments)]
async fn write_output(
    job: &str,
    t: &SqlTask,
    table: DeltaTable,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    txns: Vec<Transaction>,
    engine: &QueryEngine,
) -> Result<DeltaTable> {
    let props = || {
        CommitProperties::default()
            .with_application_transactions(txns.clone())
            .with_metadata([("tributary.job".to_string(), serde_json::json!(job))])
    };
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    check_partition_columns(job, t, &schema)?;
    let out = match &t.mode {
        WriteMode::Append | WriteMode::Overwrite => {
            return Err(Error::Internal(format!(
                "job `{job}`: {:?} output is streamed, not collected",
                t.mode
            )));
        }
        WriteMode::OverwritePartitions => {
            let Some(predicate) = partitions_predicate(&batches, &t.partition_by)? else {
                return commit_txns_only(table, props()).await;
            };
            table
                .write(batches)
                .with_save_mode(SaveMode::Overwrite)
                .with_partition_columns(t.partition_by.clone())
                .with_commit_properties(props())
                .with_replace_where(predicate)
                .await?
        }
        WriteMode::Merge { on } => {
            if rows == 0 {
                return commit_txns_only(table, props()).await;
            }
            let source = engine.context().read_batches(batches)?;
            let predicate = on
                .iter()
                .map(|c| format!("target.\"{c}\" = source.\"{c}\""))
                .collect::<Vec<_>>()
                .join(" AND ");
            let cols: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
            let (table, _metrics) = table
                .merge(source, predicate)
                .with_source_alias("source")
                .with_target_alias("target")
                .with_commit_properties(props())
                .when_matched_update(|mut u| {
                    for c in &cols {
                        u = u.update(c.as_str(), format!("source.\"{c}\""));
                    }
                    u
                })?
                .when_not_matched_insert(|mut i| {
                    for c in &cols {
                        i = i.set(c.as_str(), format!("source.\"{c}\""));
                    }
                    i
                })?
                .await?;
            table
        }
    };
    Ok(out)
}

/// Appends (or overwrites) the job's query output as DataFusion produces it, batch by batch,
/// with `txns` in the same commit; a table that does not exist yet is created with the
/// query's schema. An empty output commits the bookmarks alone (or, overwriting, empties
/// the table).
async fn write_streaming(
    lake: &Lake,
    job: &str,
    t: &SqlTask,
    target: Option<DeltaTable>,
    txns: Vec<Transaction>,
    engine: &QueryEngine,
) -> Result<DeltaTable> {
    let (plan, state) = engine.plan(&t.sql).await?;
    let schema = plan.schema().as_arrow().clone();
    check_partition_columns(job, t, &schema)?;
    let mode = match (&target, &t.mode) {
        (Some(_), WriteMode::Overwrite) => SaveMode::Overwrite,
        _ => SaveMode::Append,
    };
    let table = match target {
        Some(t) => t,
        None => lake.unloaded(&t.target)?,
    };
    let props = CommitProperties::default()
        .with_application_transactions(txns)
        .with_metadata([("tributary.job".to_string(), serde_json::json!(job))]);
    Ok(table
        .write(Vec::<RecordBatch>::new())
        .with_input_plan(plan)
        .with_session_state(Arc::new(state))
        .with_save_mode(mode)
        .with_partition_columns(t.partition_by.clone())
        .with_commit_properties(props)
        .await?)
}

fn check_partition_columns(
    job: &str,
    t: &SqlTask,
    schema: &arrow::datatypes::Schema,
) -> Result<()> {
    for c in &t.partition_by {
        if schema.field_with_name(c).is_err() {
            return Err(Error::Usage(format!(
                "job `{job}`: partition_by column `{c}` is not in the query's output ({})",
                schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(())
}

/// A commit of bookmarks alone (the run read new data but produced no rows to write).
async fn commit_txns_only(mut table: DeltaTable, props: CommitProperties) -> Result<DeltaTable> {
    let op = DeltaOperation::Write {
        mode: SaveMode::Append,
        partition_by: None,
        predicate: None,
    };
    CommitBuilder::from(props)
        .with_actions(vec![])
        .build(Some(table.snapshot()?), table.log_store(), op)
        .await?;
    table.update_state().await?;
    Ok(table)
}

/// `(p1 = 'a' AND p2 = 'b') OR …` over the partitions present in the output.
fn partitions_predicate(batches: &[RecordBatch], cols: &[String]) -> Result<Option<String>> {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let mut seen = std::collections::BTreeSet::new();
    let opts = FormatOptions::default();
    for b in batches {
        let arrays = cols
            .iter()
            .map(|c| {
                b.column_by_name(c)
                    .ok_or_else(|| Error::Internal(format!("no column {c}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let fmts = arrays
            .iter()
            .map(|a| ArrayFormatter::try_new(a.as_ref(), &opts))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for row in 0..b.num_rows() {
            let key: Vec<Option<String>> = arrays
                .iter()
                .zip(&fmts)
                .map(|(a, f)| a.is_valid(row).then(|| f.value(row).to_string()))
                .collect();
            seen.insert(key);
        }
    }
    if seen.is_empty() {
        return Ok(None);
    }
    let terms: Vec<String> = seen
        .iter()
        .map(|key| {
            let parts: Vec<String> = cols
                .iter()
                .zip(key)
                .map(|(c, v)| match v {
                    Some(v) => format!("\"{c}\" = '{}'", v.replace('\'', "''")),
                    None => format!("\"{c}\" IS NULL"),
                })
                .collect();
            format!("({})", parts.join(" AND "))
        })
        .collect();
    Ok(Some(terms.join(" OR ")))
}

/// Sets a job's bookmarks back (a txn-only commit on its target): the next run reads its
/// incremental sources in full.
pub async fn reset_bookmarks(lake: &Lake, job: &Job) -> Result<usize> {
    let Task::Sql(t) = &job.task else {
        return Err(Error::Usage(format!(
            "job `{}` is a {} job: it keeps no bookmarks",
            job.name,
            job.task.kind()
        )));
    };
    let Some(table) = lake.load(&t.target).await? else {
        return Ok(0);
    };
    let txns: Vec<Transaction> = t
        .incremental
        .iter()
        .map(|(s, _)| Transaction::new(bookmark_app_id(&job.name, s), -1))
        .collect();
    let n = txns.len();
    if n > 0 {
        commit_txns_only(
            table,
            CommitProperties::default().with_application_transactions(txns),
        )
        .await?;
    }
    Ok(n)
}

/// An error's text without the backtrace some libraries append to it.
fn without_backtrace(s: &str) -> String {
    let cut = ["\n   0: ", "\nstack backtrace:", "\nBacktrace:"]
        .iter()
        .filter_map(|m| s.find(m))
        .min()
        .unwrap_or(s.len());
    s[..cut].trim_end().to_string()
}
