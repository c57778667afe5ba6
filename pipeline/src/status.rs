//! `tributary status`: each pipeline's table (version, last commit, rows), its dead-letter
//! count, and its lag — input not yet committed: files and bytes for files and S3 prefixes,
//! per shard `MillisBehindLatest` after the committed sequence number for Kinesis.

use std::fmt::Write as _;

use aws_sdk_kinesis::types::ShardIteratorType;
use tributary_connectors::file::{Compression, InputFile};
use tributary_connectors::{Offset, SourceKind};

use crate::config::{Config, Pipeline};
use crate::error::Result;
use crate::lake::{self, Lake};

#[derive(Debug)]
pub struct PipelineStatus {
    pub pipeline: String,
    pub table: String,
    pub version: Option<i64>,
    pub last_commit_ms: Option<i64>,
    pub rows: u64,
    pub dlq_rows: u64,
    pub lag: String,
}

/// Inputs not (fully) committed, and their bytes (compressed inputs count whole until done).
fn pending(files: &[InputFile], done: &std::collections::HashMap<String, Offset>) -> (usize, u64) {
    let mut n = 0;
    let mut bytes = 0;
    for f in files {
        let off = done.get(&f.id).map(Offset::bytes).unwrap_or(0);
        let left = if f.compression == Compression::None {
            f.size.saturating_sub(off)
        } else if off == 0 {
            f.size
        } else {
            // Offsets of compressed inputs count decompressed bytes: in progress, size unknown.
            1
        };
        if left > 0 {
            n += 1;
            bytes += left;
        }
    }
    (n, bytes)
}

async fn lag(p: &Pipeline, table: Option<&deltalake::DeltaTable>) -> Result<String> {
    let committed = |ids: Vec<String>| async move {
        match table {
            Some(t) => lake::committed_offsets(t, &p.name, &ids).await,
            None => Ok(Default::default()),
        }
    };
    Ok(match &p.source {
        SourceKind::File(f) => {
            let files = f.list()?;
            let done = committed(files.iter().map(|f| f.id.clone()).collect()).await?;
            let (n, bytes) = pending(&files, &done);
            format!("{n} of {} files pending ({bytes} bytes)", files.len())
        }
        SourceKind::S3(s) => {
            let store = tributary_connectors::aws::s3_store(&s.bucket, &s.aws).await?;
            let files = s.list(&store).await?;
            let done = committed(files.iter().map(|f| f.id.clone()).collect()).await?;
            let (n, bytes) = pending(&files, &done);
            format!("{n} of {} objects pending ({bytes} bytes)", files.len())
        }
        SourceKind::Kinesis(k) => {
            let client = tributary_connectors::kinesis::client(&k.aws).await;
            let shards = tributary_connectors::kinesis::list_shards(&client, &k.stream).await?;
            let parts: Vec<String> = shards.iter().map(|s| k.partition(s.shard_id())).collect();
            let done = committed(parts.clone()).await?;
            let mut out = Vec::new();
            for (s, part) in shards.iter().zip(&parts) {
                let mut req = client
                    .get_shard_iterator()
                    .stream_name(&k.stream)
                    .shard_id(s.shard_id());
                req = match done.get(part) {
                    Some(Offset::Sequence { closed: true, .. }) | Some(Offset::ClosedEmpty) => {
                        out.push(format!("{} done", s.shard_id()));
                        continue;
                    }
                    Some(Offset::Sequence { seq, .. }) => req
                        .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                        .starting_sequence_number(seq.as_str()),
                    _ => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
                };
                let it = req
                    .send()
                    .await
                    .map_err(|e| tributary_connectors::kinesis::aws_error("GetShardIterator", e))?;
                let behind = match it.shard_iterator() {
                    Some(i) => client
                        .get_records()
                        .shard_iterator(i)
                        .limit(1)
                        .send()
                        .await
                        .map_err(|e| tributary_connectors::kinesis::aws_error("GetRecords", e))?
                        .millis_behind_latest(),
                    None => Some(0),
                };
                out.push(match behind {
                    Some(ms) => format!("{} {ms} ms behind", s.shard_id()),
                    None => format!("{} ?", s.shard_id()),
                });
            }
            format!("stream {}: {}", k.stream, out.join(", "))
        }
    })
}

pub async fn status(config: &Config, lake: &Lake) -> Result<Vec<PipelineStatus>> {
    let mut out = Vec::new();
    for p in &config.pipelines {
        let table = lake.load(&p.table.name).await?;
        let info = match &table {
            Some(t) => Some(lake::table_info(&p.table.name, t).await?),
            None => None,
        };
        let dlq_rows = match lake.load(&p.dlq_table()).await? {
            Some(t) => lake::table_info(&p.dlq_table(), &t).await?.rows,
            None => 0,
        };
        // A source that cannot be reached is reported as down, not as lag it cannot know.
        let lag = lag(p, table.as_ref())
            .await
            .unwrap_or_else(|e| format!("SOURCE DOWN: {} unreachable: {e}", p.source.describe()));
        out.push(PipelineStatus {
            pipeline: p.name.clone(),
            table: p.table.name.clone(),
            version: info.as_ref().map(|i| i.version),
            last_commit_ms: info.as_ref().and_then(|i| i.last_commit_ms),
            rows: info.as_ref().map(|i| i.rows).unwrap_or(0),
            dlq_rows,
            lag,
        });
    }
    Ok(out)
}

pub fn render(rows: &[PipelineStatus]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<16} {:<16} {:>7} {:<20} {:>12} {:>8}  lag",
        "pipeline", "table", "version", "last commit (UTC)", "rows", "dlq"
    );
    for r in rows {
        let when = r
            .last_commit_ms
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|| "never".into());
        let _ = writeln!(
            s,
            "{:<16} {:<16} {:>7} {:<20} {:>12} {:>8}  {}",
            r.pipeline,
            r.table,
            r.version
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
            when,
            r.rows,
            r.dlq_rows,
            r.lag
        );
    }
    s
}
