//! Built-in maintenance jobs: compaction (a Delta OPTIMIZE commit: readers of older
//! versions keep their files until vacuum), vacuum (delete files no retained version needs)
//! and dead-letter retention (delete old dead-lettered records).

use std::num::NonZeroU64;

use datafusion::prelude::{col, lit};
use datafusion::scalar::ScalarValue;
use deltalake::{FilterOp, FilterValue};

use super::config::Task;
use super::run::Outcome;
use crate::error::{Error, Result};
use crate::lake::Lake;

pub async fn run(lake: &Lake, task: &Task) -> Result<Outcome> {
    let table_name = task.target();
    let Some(table) = lake.load(table_name).await? else {
        return Err(Error::Usage(format!(
            "table `{table_name}` does not exist in the lake yet"
        )));
    };
    let mut details = serde_json::Map::new();
    let files_before = table.snapshot()?.log_data().iter().count();
    details.insert("files_before".into(), files_before.into());
    let rows_before = crate::lake::table_info(table_name, &table).await?.rows;
    let (table, rows) = match task {
        Task::Compact {
            target_file_bytes,
            partition,
            ..
        } => {
            let filters: Vec<_> = partition
                .iter()
                .map(|(c, v)| (c.as_str(), FilterOp::Eq, FilterValue::Scalar(v.as_str())))
                .collect();
            let size = NonZeroU64::new(*target_file_bytes)
                .ok_or_else(|| Error::Internal("target file size 0".into()))?;
            let (table, m) = table
                .optimize()
                .with_target_size(size)
                .with_filters(&filters)
                .await?;
            details.insert("files_removed".into(), m.num_files_removed.into());
            details.insert("files_added".into(), m.num_files_added.into());
            details.insert("partitions_optimized".into(), m.partitions_optimized.into());
            (table, 0)
        }
        Task::Vacuum { retention, .. } => {
            let period = chrono::Duration::from_std(*retention)
                .map_err(|e| Error::Internal(format!("retention: {e}")))?;
            let (table, m) = table
                .vacuum()
                .with_retention_period(period)
                // The job's own retention is the policy; Delta's default minimum (7 days)
                // would silently override a shorter one.
                .with_enforce_retention_duration(false)
                .await?;
            details.insert("files_deleted".into(), m.files_deleted.len().into());
            (table, 0)
        }
        Task::DlqRetention { retention, .. } => {
            let cutoff = chrono::Utc::now()
                - chrono::Duration::from_std(*retention)
                    .map_err(|e| Error::Internal(format!("retention: {e}")))?;
            let (table, m) = table
                .delete()
                .with_predicate(
                    col("dead_lettered_at").lt(lit(ScalarValue::TimestampMicrosecond(
                        Some(cutoff.timestamp_micros()),
                        Some("UTC".into()),
                    ))),
                )
                .await?;
            details.insert("cutoff".into(), cutoff.to_rfc3339().into());
            // Whole files deleted from metadata alone report no row count: count the rows.
            let after = crate::lake::table_info(table_name, &table).await?.rows;
            let deleted = m
                .num_deleted_rows
                .map(|n| n as u64)
                .unwrap_or(rows_before.saturating_sub(after));
            details.insert("rows_deleted".into(), deleted.into());
            (table, deleted)
        }
        Task::Sql(_) => return Err(Error::Internal("not a maintenance task".into())),
    };
    let files_after = table.snapshot()?.log_data().iter().count();
    details.insert("files_after".into(), files_after.into());
    Ok(Outcome {
        rows,
        bytes: 0,
        target_version: table.version().map(|v| v as i64),
        details,
    })
}
