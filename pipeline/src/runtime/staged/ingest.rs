//! The ingest stage: the source's input, chunk by chunk, into numbered raw segments.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{BinaryArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use tokio::sync::mpsc;
use tributary_connectors::Offset;
use tributary_connectors::file::Compression;

use super::{SegmentMeta, StageLease, StageSummary, Staging, decode, encode, stage_txn_id};
use crate::config::Pipeline;
use crate::error::{Error, Result};
use crate::lake::{self, Lake};
use crate::runtime::feed::{Msg, Work, spawn_reader};

fn raw_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![Field::new(
        "records",
        DataType::Binary,
        false,
    )]))
}

/// The chunk's NDJSON bytes back from a raw segment.
pub(super) fn raw_records(batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for b in batches {
        let col = b
            .column(0)
            .as_any()
            .downcast_ref::<BinaryArray>()
            .ok_or_else(|| Error::Internal("a raw segment is not binary".into()))?;
        for v in col.iter().flatten() {
            out.extend_from_slice(v);
        }
    }
    Ok(out)
}

/// Reads the pipeline's input from where the table and the staged segments leave off;
/// `only`: just these S3 object keys (an ingest function's notification), not the whole prefix.
pub async fn ingest(
    p: &Pipeline,
    lake: &Lake,
    stop: Arc<AtomicBool>,
    only: Option<&std::collections::BTreeSet<String>>,
) -> Result<StageSummary> {
    let started = Instant::now();
    let Some(mut lease) = StageLease::acquire(lake, &p.name, "ingest", &stop).await? else {
        return Ok(StageSummary {
            stage: "ingest",
            ..Default::default()
        });
    };
    let staging = Staging::open(lake, &p.name)?;
    // This process is the only writer of raw/ now (it holds the lease).
    staging.sweep_partial("raw", Duration::ZERO);
    staging.set_done(None).await?;
    let (files, opener, poll) = crate::runtime::setup::list_inputs(p, only).await?;
    // What is staged was read already. The order matters, as transform and sink may be
    // running: list raw, then out (a segment moving between them is then seen in one), read
    // each segment's end (from out if it has moved), and only then read the table. A segment
    // gone by then was committed first, so the table covers it.
    let mut staged: Vec<u64> = staging.list("raw").await?.into_keys().collect();
    staged.extend(staging.list("out").await?.into_keys());
    staged.sort_unstable();
    staged.dedup();
    let mut ends: Vec<(String, u64)> = Vec::new();
    for &seq in &staged {
        for path in [staging.raw_path(seq), staging.out_path(seq)] {
            match staging.read(&path).await {
                Ok(bytes) => {
                    let (m, _) = decode(bytes)?;
                    ends.push((m.partition, m.end));
                    break;
                }
                Err(Error::ObjectStore(object_store::Error::NotFound { .. })) => continue,
                Err(e) => return Err(e),
            }
        }
    }
    let table = crate::runtime::setup::open_table(p, lake).await?;
    let ids: Vec<String> = files.iter().map(|f| f.id.clone()).collect();
    let mut furthest: HashMap<String, u64> = lake::committed_offsets(&table, &p.name, &ids)
        .await?
        .into_iter()
        .map(|(k, v)| (k, v.bytes()))
        .collect();
    for (partition, end) in ends {
        let e = furthest.entry(partition).or_insert(0);
        *e = (*e).max(end);
    }
    let committed = lake::txn(&table, &stage_txn_id(&p.name))
        .await?
        .unwrap_or(0)
        .max(0) as u64;
    let mut next = committed.max(staged.last().copied().unwrap_or(0)) + 1;
    let mut work = Vec::new();
    for f in files {
        let offset = furthest.get(&f.id).copied().unwrap_or(0);
        if f.compression == Compression::None && offset >= f.size {
            continue;
        }
        work.push(Work {
            file: f,
            offset,
            dlq_offset: 0,
        });
    }
    tracing::info!(pipeline = %p.name, inputs = work.len(), first_segment = next, "ingest starting");
    let (tx, mut rx) = mpsc::channel::<Msg>(2);
    let reader_stop = Arc::new(AtomicBool::new(false));
    let reader = spawn_reader(
        work,
        opener,
        poll,
        p.batch_size,
        tx,
        [stop.clone(), reader_stop.clone()],
    );
    let mut summary = StageSummary {
        stage: "ingest",
        ..Default::default()
    };
    let schema = raw_schema();
    let mut since_check = 0usize;
    let result: Result<()> = async {
        loop {
            lease.keep().await?;
            let msg = match tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
                Err(_) => continue,
                Ok(None) => break,
                Ok(Some(m)) => m,
            };
            let chunk = match msg {
                Msg::Chunk(c, _) => c,
                Msg::Failed(e) => return Err(e),
                Msg::Restart { .. } => continue,
            };
            if chunk.records.is_empty() {
                continue;
            }
            let Offset::Bytes(end) = chunk.end else {
                return Err(Error::Internal("a file chunk without a byte offset".into()));
            };
            let mut lines = memchr::memchr_iter(b'\n', &chunk.records).count() as u64;
            if chunk.records.last() != Some(&b'\n') {
                lines += 1;
            }
            let meta = SegmentMeta {
                seq: next,
                partition: chunk.start.partition.clone(),
                start: chunk.start.offset,
                end,
                lines,
                bytes: chunk.records.len() as u64,
                filtered: 0,
                dead: 0,
            };
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(BinaryArray::from(vec![chunk.records.as_slice()]))],
            )?;
            if !staging
                .create(&staging.raw_path(next), encode(&schema, &[batch], &meta)?)
                .await?
            {
                return Err(Error::Usage(format!(
                    "staged segment {next} of pipeline `{}` exists already: another ingest process of it is running (run one)",
                    p.name
                )));
            }
            summary.segments += 1;
            summary.records += lines;
            summary.bytes += meta.bytes;
            next += 1;
            // Backpressure: wait while transform is far behind (staging then holds at most
            // `max_backlog` chunks of input, ~4 MiB each).
            since_check += 1;
            if let Some(max) = p.ingest_max_backlog
                && since_check >= (max / 4).max(1)
            {
                since_check = 0;
                while staging.list("raw").await?.len() >= max && !stop.load(Ordering::Relaxed) {
                    lease.keep().await?;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        Ok(())
    }
    .await;
    reader_stop.store(true, Ordering::Relaxed);
    drop(rx);
    let _ = reader.join();
    result?;
    if !stop.load(Ordering::Relaxed) {
        // Read to the end: transform and sink may finish once they reach this segment.
        staging.set_done(Some(next - 1)).await?;
    }
    lease.release().await?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}
