//! The sink stage: transformed segments, strictly in sequence order, into the table and its
//! DLQ. Each commit records its last segment (a Delta app transaction per table) next to the
//! source positions, so a segment at or below it is never written again, and a plain
//! `tributary run` can continue where the stages stopped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use deltalake::kernel::Transaction;
use tributary_connectors::Offset;

use super::{StageLease, StageSummary, Staging, decode, stage_txn_id};
use crate::config::Pipeline;
use crate::error::Result;
use crate::lake::{self, Lake, TableSink};

/// What has been written but not yet committed.
#[derive(Default)]
struct InHand {
    seqs: Vec<u64>,
    positions: BTreeMap<String, u64>,
    dead: Vec<RecordBatch>,
}

pub async fn sink(
    p: &Pipeline,
    lake: &Lake,
    stop: Arc<AtomicBool>,
    idle_exit: Option<Duration>,
) -> Result<StageSummary> {
    let started = Instant::now();
    let Some(mut lease) = StageLease::acquire(lake, &p.name, "sink", &stop).await? else {
        return Ok(StageSummary {
            stage: "sink",
            ..Default::default()
        });
    };
    let staging = Staging::open(lake, &p.name)?;
    let (mut main, mut dlq) = crate::runtime::setup::open_sinks(p, lake).await?;
    let key = stage_txn_id(&p.name);
    let mut committed = lake::txn(main.table(), &key).await?.unwrap_or(0).max(0) as u64;
    let mut dlq_committed = match &dlq {
        Some(d) => lake::txn(d.table(), &key).await?.unwrap_or(0).max(0) as u64,
        None => u64::MAX,
    };
    let mut summary = StageSummary {
        stage: "sink",
        ..Default::default()
    };
    let mut hand = InHand::default();
    let mut next = committed + 1;
    let mut last_flush = Instant::now();
    let mut last_arrival = Instant::now();
    loop {
        lease.keep().await?;
        let stopping = stop.load(Ordering::Relaxed);
        let out = if stopping {
            BTreeMap::new()
        } else {
            // An outage is not idleness: retried, and the idle window starts again.
            let Some(out) = staging.list_or_outage("out", &p.name).await? else {
                last_arrival = Instant::now();
                continue;
            };
            out
        };
        // Left by a crash after a commit: already in the table.
        for (&seq, path) in out.range(..=committed) {
            staging.delete(path).await?;
            staging.delete(&staging.dlq_path(seq)).await?;
        }
        let mut progressed = false;
        while let Some(path) = out.get(&next) {
            let (meta, batches) = decode(staging.read(path).await?)?;
            for b in batches {
                main.write(lake::split_by_partition(b, main.partition_columns())?)
                    .await?;
            }
            if meta.dead > 0 && dlq.is_some() && next > dlq_committed {
                let (_, dead) = decode(staging.read(&staging.dlq_path(next)).await?)?;
                hand.dead.extend(dead);
            }
            summary.records += meta.lines;
            summary.bytes += meta.bytes;
            summary.segments += 1;
            hand.positions.insert(meta.partition, meta.end);
            hand.seqs.push(next);
            next += 1;
            progressed = true;
            last_arrival = Instant::now();
            if main.buffered_rows() >= p.sink.flush_rows {
                break;
            }
        }
        // Whether ingest has finished and everything it staged is in hand (asked only once
        // the next segment is missing: a read per loop would cost a request on S3).
        let caught_up =
            !out.contains_key(&next) && staging.done().await?.is_some_and(|last| next > last);
        if !hand.seqs.is_empty()
            && (stopping
                || caught_up
                || main.buffered_rows() >= p.sink.flush_rows
                || last_flush.elapsed() >= p.sink.flush_interval
                // Exiting when idle (a sink function): what is in hand is committed first.
                || idle_exit.is_some_and(|i| !progressed && last_arrival.elapsed() >= i))
        {
            flush(
                p,
                &staging,
                &key,
                &mut main,
                dlq.as_mut(),
                &mut hand,
                &mut summary,
                &mut dlq_committed,
            )
            .await?;
            committed = next - 1;
            last_flush = Instant::now();
        }
        if stopping || (caught_up && hand.seqs.is_empty()) {
            break;
        }
        if let Some(idle) = idle_exit
            && hand.seqs.is_empty()
            && last_arrival.elapsed() >= idle
        {
            break;
        }
        if !progressed {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Partial files of transforms killed mid-put; a live transform's put takes far less
    // than this, and removing its file would only fail that put.
    staging.sweep_partial("out", Duration::from_secs(10));
    lease.release().await?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

#[allow(clippy::too_many_arguments)]
async fn flush(
    p: &Pipeline,
    staging: &Staging,
    key: &str,
    main: &mut TableSink,
    dlq: Option<&mut TableSink>,
    hand: &mut InHand,
    summary: &mut StageSummary,
    dlq_committed: &mut u64,
) -> Result<()> {
    let Some(&last) = hand.seqs.last() else {
        return Ok(());
    };
    let meta = |n: u64| {
        std::collections::HashMap::from([
            ("tributary.pipeline".to_string(), serde_json::json!(p.name)),
            ("tributary.records".to_string(), serde_json::json!(n)),
            ("tributary.segments".to_string(), serde_json::json!(last)),
        ])
    };
    // Dead letters first: if the main commit then fails, the retry skips them (the DLQ's
    // own transaction says how far it got).
    if let Some(d) = dlq
        && !hand.dead.is_empty()
    {
        let n: usize = hand.dead.iter().map(|b| b.num_rows()).sum();
        for b in hand.dead.drain(..) {
            d.write(lake::split_by_partition(b, &[])?).await?;
        }
        if d.commit(vec![Transaction::new(key, last as i64)], meta(n as u64))
            .await?
            .is_some()
        {
            summary.commits += 1;
        }
        summary.dead_lettered += n as u64;
        *dlq_committed = last;
    }
    let mut txns: Vec<Transaction> = hand
        .positions
        .iter()
        .flat_map(|(part, end)| lake::offset_txns(&p.name, part, &Offset::Bytes(*end)))
        .collect();
    txns.push(Transaction::new(key, last as i64));
    let rows = main.buffered_rows();
    if let Some(stats) = main.commit(txns, meta(rows)).await? {
        summary.commits += 1;
        tracing::info!(table = %p.table.name, version = stats.version, rows = stats.rows, last_segment = last, "commit");
    }
    for seq in hand.seqs.drain(..) {
        staging.delete(&staging.out_path(seq)).await?;
        staging.delete(&staging.dlq_path(seq)).await?;
    }
    hand.positions.clear();
    Ok(())
}
