//! Running a pipeline in one process: ingest (read + decode + validate) → transform → sink
//! (partition + write + commit), joined by bounded channels so a slow sink slows reading.
//!
//! Decode and transform run on a pool of `parallelism` blocking workers; results are
//! consumed in input order (`buffered`), so the sink always knows that everything before a
//! chunk's end offset is in hand — the position it commits is exact.

mod feed;
mod setup;
mod stage;
pub mod staged;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use deltalake::kernel::Transaction;
use futures::StreamExt;
use tokio::sync::mpsc;
use tributary_connectors::caught_up::CaughtUp;
use tributary_connectors::file::Compression;
use tributary_connectors::kinesis::{Leases, StreamSource};
use tributary_connectors::{Offset, SeqNo, SourceKind};

use crate::config::{BadRecordPolicy, Pipeline};
use crate::decode::BadRecord;
use crate::error::{Error, ErrorClass, Result};
use crate::lake::{self, Lake, TableSink};
use feed::{Msg, Work, forward_stream, spawn_reader};
use setup::{build_stage, list_inputs, open_sinks};
use stage::Processed;

#[derive(Clone, Default)]
pub struct RunOptions {
    /// Show a progress bar (only when attached to a terminal).
    pub progress: bool,
    /// Set to stop reading; what was read is flushed and committed.
    pub stop: Arc<AtomicBool>,
    /// Streams: stop once no new record has arrived for this long.
    pub idle_exit: Option<Duration>,
    /// S3 sources: read only these object keys (an S3 notification), not the whole prefix.
    pub only_objects: Option<std::collections::BTreeSet<String>>,
    /// Kinesis sources: process these batches (a Lambda event-source-mapping batch) instead
    /// of reading the stream; committed with their sequence numbers like read ones.
    pub batches: Option<Arc<Vec<tributary_connectors::SourceBatch>>>,
    /// Counters for the Prometheus endpoint (`run --metrics-addr`).
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
}

/// What a run did, for the final summary.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub pipeline: String,
    pub table: String,
    pub files: usize,
    pub files_skipped: usize,
    pub bytes_read: u64,
    pub records_read: u64,
    pub records_written: u64,
    pub records_filtered: u64,
    pub dead_lettered: u64,
    pub dropped: u64,
    pub commits: usize,
    pub data_files: usize,
    pub bytes_written: u64,
    pub elapsed: Duration,
    /// Streams: per shard, user records read and the last MillisBehindLatest.
    pub shards: std::collections::BTreeMap<String, (u64, i64)>,
}

impl RunSummary {
    pub fn records_per_sec(&self) -> f64 {
        self.records_read as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl std::fmt::Display for RunSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "pipeline {} → table {}", self.pipeline, self.table)?;
        if self.files > 0 || self.bytes_read == 0 {
            writeln!(
                f,
                "  input      {} files ({} already complete), {:.1} MB",
                self.files,
                self.files_skipped,
                self.bytes_read as f64 / 1e6
            )?;
        } else {
            writeln!(f, "  input      {:.1} MB", self.bytes_read as f64 / 1e6)?;
        }
        writeln!(f, "  read       {} records", self.records_read)?;
        writeln!(f, "  written    {} records", self.records_written)?;
        if self.records_filtered > 0 {
            writeln!(
                f,
                "  filtered   {} records (by transforms)",
                self.records_filtered
            )?;
        }
        writeln!(
            f,
            "  dlq        {} records (dead-lettered)",
            self.dead_lettered
        )?;
        if self.dropped > 0 {
            writeln!(
                f,
                "  dropped    {} records (on_bad_record = \"drop\")",
                self.dropped
            )?;
        }
        writeln!(
            f,
            "  lake       {} data files, {:.1} MB, {} commits",
            self.data_files,
            self.bytes_written as f64 / 1e6,
            self.commits
        )?;
        for (shard, (records, behind)) in &self.shards {
            writeln!(
                f,
                "  shard      {shard}: {records} records, {behind} ms behind latest"
            )?;
        }
        write!(
            f,
            "  elapsed    {:.2} s ({:.0} records/s)",
            self.elapsed.as_secs_f64(),
            self.records_per_sec()
        )
    }
}

/// What one attempt of a run ended with.
enum Outcome {
    Done,
    /// Start over from the lake's positions (streams: a lease moved, workers changed).
    Restart(String),
}

/// Runs one pipeline: files and (non-polling) S3 prefixes to the end of their input;
/// streams until stopped (Ctrl-C / SIGTERM) or idle for `idle_exit`. Everything read is
/// committed before it returns.
pub async fn run_pipeline(p: &Pipeline, lake: &Lake, opts: &RunOptions) -> Result<RunSummary> {
    let started = Instant::now();
    let mut summary = RunSummary {
        pipeline: p.name.clone(),
        table: p.table.name.clone(),
        ..Default::default()
    };
    let owner = format!(
        "{}-{}-{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into()),
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let mut attempt = 0u32;
    loop {
        match run_once(p, lake, opts, &owner, &mut summary).await {
            Ok(Outcome::Done) => break,
            Ok(Outcome::Restart(reason)) => {
                tracing::info!(pipeline = %p.name, %reason, "starting over from the lake's positions");
                attempt = 0;
            }
            Err(e)
                if e.class() == ErrorClass::Transient
                    && matches!(p.source, SourceKind::Kinesis(_))
                    && !opts.stop.load(Ordering::Relaxed) =>
            {
                let wait = tributary_connectors::aws::backoff(
                    attempt,
                    Duration::from_millis(500),
                    Duration::from_secs(30),
                );
                tracing::warn!(pipeline = %p.name, error = %e, "run failed; starting over in {wait:?}");
                attempt = attempt.saturating_add(1);
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
        if opts.stop.load(Ordering::Relaxed) {
            break;
        }
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

async fn run_once(
    p: &Pipeline,
    lake: &Lake,
    opts: &RunOptions,
    owner: &str,
    summary: &mut RunSummary,
) -> Result<Outcome> {
    // Parquet encoders run in parallel with decoding (open_sinks says how many).
    let (mut main, mut dlq) = open_sinks(p, lake).await?;
    let metrics = opts.metrics.as_ref().map(|m| m.pipeline(&p.name));

    let (tx, rx) = mpsc::channel::<Msg>(p.parallelism * 2);
    let mut pending = Pending::default();
    let stream_mode = matches!(p.source, SourceKind::Kinesis(_));
    let mut total_bytes = 0;
    let mut reader = None;
    let mut forward = None;
    let mut source_stop = None;
    // Whether the source has read all there is (polled S3 prefixes, streams): --idle-exit
    // waits for it, so an outage is never taken for the end of the input.
    let mut caught_up: Option<Arc<CaughtUp>> = None;
    // Set when this run ends (whatever the cause), so the file/S3 reader thread ends too.
    let reader_stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    match &p.source {
        SourceKind::File(_) | SourceKind::S3(_) => {
            let (files, opener, poll) = list_inputs(p, opts.only_objects.as_ref()).await?;
            caught_up = poll.as_ref().map(|poll| poll.caught_up.clone());
            summary.files += files.len();
            let ids: Vec<String> = files.iter().map(|f| f.id.clone()).collect();
            // Resume points, from the tables' own commit log.
            let done = lake::committed_offsets(main.table(), &p.name, &ids).await?;
            let dlq_done = match &dlq {
                Some(d) => lake::committed_offsets(d.table(), &p.name, &ids).await?,
                None => HashMap::new(),
            };
            let mut work = Vec::new();
            for f in files {
                let offset = done.get(&f.id).map(Offset::bytes).unwrap_or(0);
                let dlq_offset = dlq_done.get(&f.id).map(Offset::bytes).unwrap_or(0);
                pending
                    .dlq_offsets
                    .insert(f.id.clone(), Offset::Bytes(dlq_offset));
                if f.compression == Compression::None && offset >= f.size {
                    if offset > f.size {
                        // Inputs are append-only: a shorter file was replaced, and its new
                        // content is not read again under the same name.
                        tracing::warn!(file = %f.id, offset, size = f.size, "input is shorter than its committed offset (replaced?); skipping it");
                    }
                    summary.files_skipped += 1;
                    continue;
                }
                if offset > 0 {
                    tracing::info!(file = %f.id, offset, "resuming from committed offset");
                }
                total_bytes += f.size.saturating_sub(offset);
                work.push(Work {
                    file: f,
                    offset,
                    dlq_offset,
                });
            }
            reader = Some(spawn_reader(
                work,
                opener,
                poll,
                p.batch_size,
                tx,
                [opts.stop.clone(), reader_stop.0.clone()],
            ));
        }
        SourceKind::Kinesis(_) if opts.batches.is_some() => {
            let batches = opts.batches.clone().unwrap_or_default();
            tokio::spawn(async move {
                for b in batches.iter() {
                    if tx.send(Msg::Chunk(b.clone(), 0)).await.is_err() {
                        break;
                    }
                }
                // Dropping `tx` ends the stream: what was sent is processed and committed.
            });
        }
        SourceKind::Kinesis(k) => {
            let client = tributary_connectors::kinesis::client(&k.aws).await;
            let checkpoints = Arc::new(lake::LakeCheckpoints {
                lake: lake.clone(),
                table: p.table.name.clone(),
                pipeline: p.name.clone(),
            });
            let leases = Leases::new(lake.lease_store(&p.name)?, owner.to_string());
            let source = StreamSource::spawn(
                client,
                k.clone(),
                checkpoints,
                Some(leases),
                p.parallelism * 2,
            );
            if let Some(m) = &metrics
                && let Ok(mut shards) = m.shards.lock()
            {
                *shards = Some(source.metrics.clone());
            }
            caught_up = Some(source.caught_up.clone());
            source_stop = Some(StopOnDrop(source.stop_handle()));
            forward = Some(forward_stream(source, tx));
        }
    }

    if let (Some(m), Some(c)) = (&metrics, &caught_up)
        && let Ok(mut source) = m.source.lock()
    {
        *source = Some(c.clone());
    }
    let stage = Arc::new(build_stage(p, &main));

    let progress = progress_bar(opts.progress && !stream_mode, total_bytes);
    // When records last arrived from the source (ms since `t0`), for --idle-exit.
    let t0 = Instant::now();
    let arrived = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let arrived_w = arrived.clone();
    // Boxed (not stack-pinned) so that dropping it closes the channel and frees the reader.
    let mut stream = Box::pin(
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) })
            .map(move |msg| {
                let stage = stage.clone();
                if let Msg::Chunk(c, _) = &msg
                    && !c.records.is_empty()
                {
                    arrived_w.store(t0.elapsed().as_millis() as u64, Ordering::Relaxed);
                }
                async move {
                    match msg {
                        Msg::Chunk(chunk, skip) => {
                            tokio::task::spawn_blocking(move || stage.process(chunk, skip))
                                .await
                                .map(Step::Processed)
                                .map_err(|e| Error::Internal(format!("worker panicked: {e}")))
                        }
                        Msg::Failed(e) => Err(e),
                        Msg::Restart { flush, reason } => Ok(Step::Restart { flush, reason }),
                    }
                }
            })
            // Two chunks per worker in flight: results are taken in order, so with one
            // each, a worker that finished early waited for the slowest (2 cores ~5 % idle).
            .buffered(p.parallelism * 2),
    );

    let mut last_flush = Instant::now();
    let mut last_data = Instant::now();
    // Idle: the source is stopped, and what it already read is processed and committed.
    let mut draining = false;
    let mut result: Result<Outcome> = Ok(Outcome::Done);
    let mut commit_in_hand = true;
    loop {
        // Streams wake up regularly to commit on time and to notice idleness.
        let next = if stream_mode || p.sink.flush_interval < Duration::from_secs(3600) {
            tokio::time::timeout(Duration::from_millis(250), stream.next())
                .await
                .ok()
        } else {
            Some(stream.next().await)
        };
        // On stop, what is queued but not yet in hand is left for the next run: only
        // chunks already handed to the sink are committed, so stopping is quick.
        if opts.stop.load(Ordering::Relaxed) {
            break;
        }
        let mut must_flush = false;
        match next {
            None => {}
            Some(None) => break,
            Some(Some(Err(e))) => {
                result = Err(e);
                break;
            }
            Some(Some(Ok(Step::Restart { flush, reason }))) => {
                commit_in_hand = flush;
                result = Ok(Outcome::Restart(reason));
                break;
            }
            Some(Some(Ok(Step::Processed(mut item)))) => {
                if item.lines > 0 {
                    last_data = Instant::now();
                }
                summary.records_read += item.lines;
                summary.bytes_read += item.bytes;
                summary.records_filtered += item.filtered;
                if let Some(m) = &metrics {
                    use crate::metrics::PipelineMetrics as M;
                    M::add(&m.records_in, item.lines);
                    M::add(&m.bytes_in, item.bytes);
                    M::add(&m.records_filtered, item.filtered);
                }
                if stream_mode {
                    pending
                        .note_stream_batch(&item, dlq.as_ref(), &p.name)
                        .await?;
                    pending.drop_dead_lettered(&mut item);
                }
                if !item.bad.is_empty() {
                    match p.on_bad_record {
                        BadRecordPolicy::Fail => {
                            let b = &item.bad[0];
                            let position = match &b.record_id {
                                Some(id) => format!("{}@{id}", b.partition),
                                None => format!("{}@{}", b.partition, b.offset),
                            };
                            result = Err(Error::BadRecord {
                                position,
                                reason: format!("{} ({})", b.reason, b.kind),
                            });
                            break;
                        }
                        BadRecordPolicy::Drop => summary.dropped += item.bad.len() as u64,
                        BadRecordPolicy::Dlq => pending.dead.extend(item.bad),
                    }
                }
                main.write(item.parts).await?;
                // A shard's end is committed at once: its children wait for it.
                must_flush = item.end.is_closed();
                pending.positions.insert(item.partition, item.end);
                progress.inc(item.bytes);
                progress.set_message(format!(
                    "{} records, {} dead-lettered",
                    summary.records_read,
                    summary.dead_lettered + pending.dead.len() as u64
                ));
            }
        }
        if must_flush
            || main.buffered_rows() >= p.sink.flush_rows
            || pending.dead.len() as u64 >= p.sink.flush_rows
            || (!pending.positions.is_empty() && last_flush.elapsed() >= p.sink.flush_interval)
        {
            flush(
                p,
                &mut main,
                dlq.as_mut(),
                &mut pending,
                summary,
                stream_mode,
                metrics.as_deref(),
            )
            .await?;
            last_flush = Instant::now();
        }
        let last_arrival = t0 + Duration::from_millis(arrived.load(Ordering::Relaxed));
        if let Some(idle) = opts.idle_exit
            && !draining
            && last_data.elapsed() >= idle
            && last_arrival.elapsed() >= idle
            && caught_up
                .as_ref()
                .is_none_or(|c| c.caught_up_for().is_some_and(|d| d >= idle))
        {
            tracing::info!(pipeline = %p.name, "caught up (every part of the source at its tip, no failed call) and no new records for {idle:?}; finishing what was read");
            draining = true;
            reader_stop.0.store(true, Ordering::Relaxed);
            if let Some(s) = &source_stop {
                s.0.store(true, Ordering::Relaxed);
            }
        }
    }
    // Stop the readers before the final flush, whatever happened.
    drop(source_stop);
    drop(reader_stop);
    drop(stream);
    if let Some(r) = reader {
        let _ = r.join();
    }
    // Commit what was read; after a bad record under `fail`, what came before it is good.
    let committable = match &result {
        Ok(_) => commit_in_hand,
        Err(Error::BadRecord { .. }) => true,
        Err(_) => false,
    };
    if committable {
        flush(
            p,
            &mut main,
            dlq.as_mut(),
            &mut pending,
            summary,
            stream_mode,
            metrics.as_deref(),
        )
        .await?;
    }
    if let Some(f) = forward
        && let Ok(source) = f.await
    {
        if let Ok(m) = source.metrics.lock() {
            for (shard, m) in m.iter() {
                let e = summary.shards.entry(shard.clone()).or_default();
                e.0 += m.records.load(Ordering::Relaxed);
                e.1 = m.millis_behind.load(Ordering::Relaxed);
            }
        }
        source.shutdown().await;
    }
    progress.finish_and_clear();
    result
}

/// Stops a stream source's readers however `run_once` ends (an early `?` included), so
/// none outlives its run.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

enum Step {
    Processed(Processed),
    Restart { flush: bool, reason: String },
}

/// What the sink has in hand and not yet committed.
#[derive(Default)]
struct Pending {
    /// Source partition → where the last chunk handed to the sink ends.
    positions: HashMap<String, Offset>,
    /// Bad records waiting for the dead-letter commit.
    dead: Vec<BadRecord>,
    /// The dead-letter table's committed offsets (they never move backwards).
    dlq_offsets: HashMap<String, Offset>,
    /// Streams: the first record in hand per partition since the last commit. If the lake
    /// says another process committed that far, this one no longer owns the partition.
    first_in_hand: HashMap<String, SeqNo>,
}

fn seq_of(id: &str) -> Option<SeqNo> {
    SeqNo::parse(id.split(':').next().unwrap_or(id))
}

impl Pending {
    /// Notes a stream batch: its first record, and (first time a partition is seen) the
    /// dead-letter table's offset for it.
    async fn note_stream_batch(
        &mut self,
        item: &Processed,
        dlq: Option<&TableSink>,
        pipeline: &str,
    ) -> Result<()> {
        if let Some(seq) = item.first_id.as_deref().and_then(seq_of) {
            self.first_in_hand
                .entry(item.partition.clone())
                .or_insert(seq);
        }
        if let Some(d) = dlq
            && !self.dlq_offsets.contains_key(&item.partition)
        {
            let part = [item.partition.clone()];
            let done = lake::committed_offsets(d.table(), pipeline, &part).await?;
            if let Some(o) = done.get(&item.partition) {
                self.dlq_offsets.insert(item.partition.clone(), o.clone());
            }
        }
        Ok(())
    }

    /// Drops bad stream records the dead-letter table already holds (a crash between the
    /// dead-letter commit and the data commit re-reads them).
    fn drop_dead_lettered(&self, item: &mut Processed) {
        let Some(Offset::Sequence { seq: done, .. }) = self.dlq_offsets.get(&item.partition) else {
            return;
        };
        item.bad.retain(|b| {
            b.record_id
                .as_deref()
                .and_then(seq_of)
                .map(|s| s > *done)
                .unwrap_or(true)
        });
    }
}

/// Commits dead letters first, then data: a crash in between re-reads the range from the
/// data table's offset, and the dead-letter table's own offset stops it adding them twice.
/// Streams first check, on a fresh view of the table, that no other process committed the
/// same partitions meanwhile (Delta's own conflict check covers the moment of the commit).
#[allow(clippy::too_many_arguments)]
async fn flush(
    p: &Pipeline,
    main: &mut TableSink,
    dlq: Option<&mut TableSink>,
    pending: &mut Pending,
    summary: &mut RunSummary,
    stream_mode: bool,
    metrics: Option<&crate::metrics::PipelineMetrics>,
) -> Result<()> {
    if pending.positions.is_empty() && pending.dead.is_empty() {
        return Ok(());
    }
    if stream_mode {
        main.refresh().await?;
        let parts: Vec<String> = pending.positions.keys().cloned().collect();
        let now = lake::committed_offsets(main.table(), &p.name, &parts).await?;
        for (part, committed) in &now {
            let taken = match (committed, pending.first_in_hand.get(part)) {
                (Offset::Sequence { seq, closed }, Some(first)) => *closed || seq >= first,
                (Offset::Sequence { .. } | Offset::ClosedEmpty, None) => committed.is_closed(),
                _ => false,
            };
            if taken {
                return Err(Error::Source(tributary_connectors::Error::LeaseLost(
                    format!("{part} was committed to {committed} by another process"),
                )));
            }
        }
    }
    let Pending {
        positions,
        dead,
        dlq_offsets,
        first_in_hand,
    } = pending;
    let meta = |n: usize| {
        HashMap::from([
            ("tributary.pipeline".to_string(), serde_json::json!(p.name)),
            ("tributary.records".to_string(), serde_json::json!(n)),
        ])
    };
    if let Some(dlq) = dlq
        && !dead.is_empty()
    {
        let mut txns: Vec<Transaction> = Vec::new();
        for (part, end) in positions.iter() {
            let v = match dlq_offsets.get(part) {
                Some(prev) if prev.at_or_past(end) => prev.clone(),
                _ => end.clone(),
            };
            txns.extend(lake::offset_txns(&p.name, part, &v));
            dlq_offsets.insert(part.clone(), v);
        }
        let batch = lake::dlq_batch(&p.name, dead, dlq.schema())?;
        dlq.write(lake::split_by_partition(batch, &[])?).await?;
        let t = Instant::now();
        if dlq.commit(txns, meta(dead.len())).await?.is_some() {
            summary.commits += 1;
            if let Some(m) = metrics {
                m.committed(t.elapsed());
                crate::metrics::PipelineMetrics::add(&m.dead_lettered, dead.len() as u64);
            }
        }
        summary.dead_lettered += dead.len() as u64;
        dead.clear();
    }
    let rows = main.buffered_rows();
    let txns: Vec<Transaction> = positions
        .iter()
        .flat_map(|(part, end)| lake::offset_txns(&p.name, part, end))
        .collect();
    let t = Instant::now();
    if let Some(stats) = main.commit(txns, meta(rows as usize)).await? {
        if let Some(m) = metrics {
            m.committed(t.elapsed());
            crate::metrics::PipelineMetrics::add(&m.records_out, stats.rows);
        }
        summary.commits += 1;
        summary.data_files += stats.files;
        summary.bytes_written += stats.bytes;
        summary.records_written += stats.rows;
        tracing::info!(table = %p.table.name, version = stats.version, files = stats.files, rows = stats.rows, "commit");
    }
    positions.clear();
    first_in_hand.clear();
    Ok(())
}

fn progress_bar(enabled: bool, total: u64) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !enabled || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
    ) {
        pb.set_style(style);
    }
    pb
}
