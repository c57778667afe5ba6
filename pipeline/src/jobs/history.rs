//! Run history: the `job_runs` lake table, one row per state change of a run (the newest
//! row of a `run_id` is its state), queryable with SQL like any table.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use datafusion::prelude::SessionContext;

use super::config::JOB_RUNS_TABLE;
use crate::error::{Error, Result};
use crate::lake::Lake;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Claimed, waiting for a free slot (concurrency limit or a queued overlap).
    Starting,
    Running,
    Succeeded,
    Failed,
    Timeout,
    /// The slot fired while the previous run was still going (overlap = "skip").
    Skipped,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Starting => "STARTING",
            RunState::Running => "RUNNING",
            RunState::Succeeded => "SUCCEEDED",
            RunState::Failed => "FAILED",
            RunState::Timeout => "TIMEOUT",
            RunState::Skipped => "SKIPPED",
        }
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, RunState::Starting | RunState::Running)
    }

    fn parse(s: &str) -> Option<RunState> {
        [
            RunState::Starting,
            RunState::Running,
            RunState::Succeeded,
            RunState::Failed,
            RunState::Timeout,
            RunState::Skipped,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// One row of `job_runs`.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub job: String,
    pub run_id: String,
    pub attempt: i32,
    /// schedule | catch_up | dependency | manual | backfill
    pub trigger: String,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub state: RunState,
    pub rows_written: i64,
    pub bytes_written: i64,
    pub target_version: Option<i64>,
    /// JSON: source versions read, files compacted, …
    pub details: Option<String>,
    pub error: Option<String>,
}

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("job", DataType::Utf8, false),
        Field::new("run_id", DataType::Utf8, false),
        Field::new("attempt", DataType::Int32, false),
        Field::new("trigger", DataType::Utf8, false),
        Field::new("scheduled_for", ts(), true),
        Field::new("started_at", ts(), false),
        Field::new("ended_at", ts(), true),
        Field::new("updated_at", ts(), false),
        Field::new("state", DataType::Utf8, false),
        Field::new("rows_written", DataType::Int64, false),
        Field::new("bytes_written", DataType::Int64, false),
        Field::new("target_version", DataType::Int64, true),
        Field::new("details", DataType::Utf8, true),
        Field::new("error", DataType::Utf8, true),
    ]))
}

/// Appends one state change to `job_runs` (creating the table on first use).
pub async fn record(lake: &Lake, r: &RunRecord) -> Result<()> {
    let micros = |t: &DateTime<Utc>| t.timestamp_micros();
    let ts_col = |v: Option<i64>| -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(vec![v]).with_timezone("UTC"))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![r.job.as_str()])),
        Arc::new(StringArray::from(vec![r.run_id.as_str()])),
        Arc::new(Int32Array::from(vec![r.attempt])),
        Arc::new(StringArray::from(vec![r.trigger.as_str()])),
        ts_col(r.scheduled_for.as_ref().map(micros)),
        ts_col(Some(micros(&r.started_at))),
        ts_col(r.ended_at.as_ref().map(micros)),
        ts_col(Some(Utc::now().timestamp_micros())),
        Arc::new(StringArray::from(vec![r.state.as_str()])),
        Arc::new(Int64Array::from(vec![r.rows_written])),
        Arc::new(Int64Array::from(vec![r.bytes_written])),
        Arc::new(Int64Array::from(vec![r.target_version])),
        Arc::new(StringArray::from(vec![r.details.as_deref()])),
        Arc::new(StringArray::from(vec![r.error.as_deref()])),
    ];
    let batch = RecordBatch::try_new(schema(), columns)?;
    let table = match lake.load(JOB_RUNS_TABLE).await? {
        Some(t) => t,
        None => {
            lake.open_or_create(
                JOB_RUNS_TABLE,
                &schema(),
                &[],
                Some("Tributary job runs: one row per state change"),
            )
            .await?
        }
    };
    table
        .write(vec![batch])
        .with_save_mode(deltalake::protocol::SaveMode::Append)
        .await?;
    Ok(())
}

/// The newest row of each run, newest runs first.
const LATEST: &str = "SELECT job, run_id, attempt, \"trigger\", scheduled_for, started_at, ended_at, state, rows_written, bytes_written, target_version, details, error \
    FROM (SELECT *, row_number() OVER (PARTITION BY run_id ORDER BY updated_at DESC, attempt DESC) AS rn FROM job_runs) \
    WHERE rn = 1";

/// The latest state of runs (of one job, or all), newest first, as a query result.
pub async fn latest_runs_query(
    lake: &Lake,
    job: Option<&str>,
    limit: usize,
) -> Result<Option<(SchemaRef, Vec<RecordBatch>)>> {
    let Some(ctx) = context(lake).await? else {
        return Ok(None);
    };
    let filter = job
        .map(|j| format!(" AND job = '{}'", j.replace('\'', "''")))
        .unwrap_or_default();
    let df = ctx
        .sql(&format!(
            "{LATEST}{filter} ORDER BY started_at DESC, run_id LIMIT {limit}"
        ))
        .await?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    Ok(Some((schema, df.collect().await?)))
}

/// The latest state of runs, as records.
pub async fn latest_runs(lake: &Lake, job: Option<&str>, limit: usize) -> Result<Vec<RunRecord>> {
    let Some((_, batches)) = latest_runs_query(lake, job, limit).await? else {
        return Ok(vec![]);
    };
    let mut out = Vec::new();
    for b in &batches {
        let s = |i: usize| -> Result<StringArray> {
            let a = arrow::compute::cast(b.column(i), &DataType::Utf8)?;
            Ok(a.as_any()
                .downcast_ref::<StringArray>()
                .cloned()
                .unwrap_or_else(|| StringArray::from(vec![None::<&str>; b.num_rows()])))
        };
        let n = |i: usize| -> Result<Int64Array> {
            let a = arrow::compute::cast(b.column(i), &DataType::Int64)?;
            Ok(a.as_any()
                .downcast_ref::<Int64Array>()
                .cloned()
                .unwrap_or_else(|| Int64Array::from(vec![None; b.num_rows()])))
        };
        let (job, run, attempt, trig) = (s(0)?, s(1)?, n(2)?, s(3)?);
        let (sched, started, ended, state) = (n(4)?, n(5)?, n(6)?, s(7)?);
        let (rows, bytes, version, details, error) = (n(8)?, n(9)?, n(10)?, s(11)?, s(12)?);
        let opt_s = |a: &StringArray, i: usize| a.is_valid(i).then(|| a.value(i).to_string());
        let opt_t = |a: &Int64Array, i: usize| {
            a.is_valid(i)
                .then(|| DateTime::from_timestamp_micros(a.value(i)))
                .flatten()
        };
        for i in 0..b.num_rows() {
            let Some(st) = RunState::parse(state.value(i)) else {
                continue;
            };
            out.push(RunRecord {
                job: job.value(i).to_string(),
                run_id: run.value(i).to_string(),
                attempt: attempt.value(i) as i32,
                trigger: trig.value(i).to_string(),
                scheduled_for: opt_t(&sched, i),
                started_at: opt_t(&started, i).unwrap_or_default(),
                ended_at: opt_t(&ended, i),
                state: st,
                rows_written: rows.value(i),
                bytes_written: bytes.value(i),
                target_version: version.is_valid(i).then(|| version.value(i)),
                details: opt_s(&details, i),
                error: opt_s(&error, i),
            });
        }
    }
    Ok(out)
}

/// A session with only `job_runs` registered (none if no job has run yet).
async fn context(lake: &Lake) -> Result<Option<SessionContext>> {
    let Some(table) = lake.load(JOB_RUNS_TABLE).await? else {
        return Ok(None);
    };
    let ctx = SessionContext::new_with_config(crate::query::session_config()?);
    table.update_datafusion_session(&ctx.state())?;
    let provider = table.table_provider().await?;
    ctx.register_table(JOB_RUNS_TABLE, provider)
        .map_err(|e| Error::Internal(format!("register job_runs: {e}")))?;
    Ok(Some(ctx))
}
