//! Job bookmarks: what a run reads of each incremental source table.
//!
//! A bookmark is the source table version a job has processed up to. It is kept in the
//! *target* table's Delta log as a `txn` entry (`tributary-job/<job>/<source>` → version),
//! written in the same commit as the run's output — so it moves exactly when the output
//! commits, and a failed run leaves both untouched. The next run reads the source's commits
//! after the bookmark: the files they added (`new_rows`) or the partitions they touched
//! (`changed_partitions`). Commits without data change (compaction) add nothing.

use std::collections::{BTreeSet, HashMap};

use deltalake::DeltaTable;

use crate::error::{Error, Result};

pub fn bookmark_app_id(job: &str, source: &str) -> String {
    format!("tributary-job/{job}/{source}")
}

/// The source version the job's output covers, if any (a reset bookmark is negative).
pub async fn read_bookmark(target: Option<&DeltaTable>, app_id: &str) -> Result<Option<i64>> {
    let Some(t) = target else { return Ok(None) };
    let snapshot = t.snapshot()?;
    let v = snapshot
        .transaction_version(t.log_store().as_ref(), app_id)
        .await?;
    Ok(v.filter(|v| *v >= 0))
}

/// A partition as its column → value pairs, sorted (null partition values as None).
pub type PartitionKey = Vec<(String, Option<String>)>;

/// What the commits after a bookmark changed.
#[derive(Debug, Default)]
pub struct Changes {
    /// Data files added (decoded paths, relative to the table).
    pub added: Vec<String>,
    /// Partitions with files added or removed.
    pub touched: BTreeSet<PartitionKey>,
    pub commits: usize,
}

/// Reads the commits in `(after, to]` from the table's log.
pub async fn changes(table: &DeltaTable, name: &str, after: i64, to: i64) -> Result<Changes> {
    let store = table.log_store();
    let mut out = Changes::default();
    for v in (after + 1)..=to {
        let Some(bytes) = store.read_commit_entry(v as _).await? else {
            return Err(Error::Usage(format!(
                "commit {v} of table `{name}` is no longer in its log (log retention), so the job cannot tell what changed since its bookmark; reset it with `tributary jobs reset JOB` (the next run then reads the whole table)"
            )));
        };
        out.commits += 1;
        for line in bytes.split(|b| *b == b'\n') {
            if line.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            let action: serde_json::Value = serde_json::from_slice(line).map_err(|e| {
                Error::Internal(format!("commit {v} of `{name}` is not JSON lines: {e}"))
            })?;
            for (kind, is_add) in [("add", true), ("remove", false)] {
                let Some(a) = action.get(kind) else { continue };
                if a.get("dataChange").and_then(|d| d.as_bool()) == Some(false) {
                    continue;
                }
                if let Some(pv) = a.get("partitionValues").and_then(|p| p.as_object()) {
                    let mut key: PartitionKey = pv
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string)))
                        .collect();
                    key.sort();
                    out.touched.insert(key);
                }
                if is_add && let Some(p) = a.get("path").and_then(|p| p.as_str()) {
                    out.added.push(percent_decode(p));
                }
            }
        }
    }
    Ok(out)
}

/// The table's current files, with their partitions.
pub fn current_files(table: &DeltaTable) -> Result<Vec<(String, PartitionKey)>> {
    let snapshot = table.snapshot()?;
    Ok(snapshot
        .log_data()
        .iter()
        .map(|f| {
            let mut key: PartitionKey = f.partition_values_map().into_iter().collect();
            key.sort();
            (f.path().to_string(), key)
        })
        .collect())
}

/// Files added since the bookmark that are still part of the table.
pub fn new_files(current: &[(String, PartitionKey)], changes: &Changes) -> Vec<String> {
    let added: BTreeSet<&str> = changes.added.iter().map(|s| s.as_str()).collect();
    current
        .iter()
        .filter(|(p, _)| added.contains(p.as_str()))
        .map(|(p, _)| p.clone())
        .collect()
}

/// Every current file of the partitions the commits touched.
pub fn files_of_touched(current: &[(String, PartitionKey)], changes: &Changes) -> Vec<String> {
    current
        .iter()
        .filter(|(_, k)| changes.touched.contains(k))
        .map(|(p, _)| p.clone())
        .collect()
}

/// Current files whose partition `column` equals `value` (for backfills).
pub fn files_in_partition(
    current: &[(String, PartitionKey)],
    column: &str,
    value: &str,
) -> Vec<String> {
    current
        .iter()
        .filter(|(_, k)| {
            k.iter()
                .any(|(c, v)| c == column && v.as_deref() == Some(value))
        })
        .map(|(p, _)| p.clone())
        .collect()
}

/// Totals of the data files one commit added (rows, bytes), for run statistics.
pub async fn commit_additions(table: &DeltaTable, version: i64) -> Result<(u64, u64)> {
    let Some(bytes) = table.log_store().read_commit_entry(version as _).await? else {
        return Ok((0, 0));
    };
    let mut rows = 0u64;
    let mut size = 0u64;
    for line in bytes.split(|b| *b == b'\n') {
        let Ok(action) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        if let Some(a) = action.get("add") {
            size += a.get("size").and_then(|s| s.as_u64()).unwrap_or(0);
            let stats: Option<HashMap<String, serde_json::Value>> = a
                .get("stats")
                .and_then(|s| s.as_str())
                .and_then(|s| serde_json::from_str(s).ok());
            rows += stats
                .and_then(|s| s.get("numRecords").and_then(|n| n.as_u64()))
                .unwrap_or(0);
        }
    }
    Ok((rows, size))
}

/// Decodes %XX escapes (Delta log paths are URI-encoded).
pub(crate) fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_log_paths() {
        assert_eq!(
            percent_decode("dt=2024-01-01/a%20b.parquet"),
            "dt=2024-01-01/a b.parquet"
        );
        assert_eq!(percent_decode("x%3Ay%"), "x:y%");
        assert_eq!(percent_decode("plain"), "plain");
    }

    #[test]
    fn selects_files_by_change() {
        let k = |d: &str| vec![("dt".to_string(), Some(d.to_string()))];
        let current = vec![
            ("dt=1/a".to_string(), k("1")),
            ("dt=1/b".to_string(), k("1")),
            ("dt=2/c".to_string(), k("2")),
        ];
        let mut ch = Changes::default();
        ch.added.push("dt=1/b".into());
        ch.added.push("dt=1/gone".into());
        ch.touched.insert(k("1"));
        assert_eq!(new_files(&current, &ch), ["dt=1/b"]);
        assert_eq!(files_of_touched(&current, &ch), ["dt=1/a", "dt=1/b"]);
        assert_eq!(files_in_partition(&current, "dt", "2"), ["dt=2/c"]);
    }
}
