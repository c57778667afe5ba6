//! Running a pipeline in one process: ingest (read + decode + validate) → transform → sink
//! (partition + write + commit), joined by bounded channels so a slow sink slows reading.
//!
//! Decode and transform run on a pool of `parallelism` blocking workers; results are
//! consumed in input order (`buffered`), so the sink always knows that everything before a
//! chunk's end offset is in hand — the position it commits is exact.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, new_null_array};
use arrow::compute::{CastOptions, cast_with_options, filter_record_batch, is_null, not, or};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::util::display::FormatOptions;
use deltalake::kernel::Transaction;
use futures::StreamExt;
use tributary_connectors::file::{FileReader, InputFile};
use tributary_connectors::{SourceBatch, SourceKind};

use crate::config::{BadRecordPolicy, Pipeline};
use crate::decode::{BadRecord, NdjsonDecoder, required_fields};
use crate::error::{Error, Result};
use crate::lake::{self, Lake, PartBatch, TableSink, WriterSettings};
use crate::schema::{PartitionSpec, PartitionTransform};
use crate::transform::{Transform, apply_all};

/// Bytes of input handed to one decode worker at a time (at most; `batch_size` caps the
/// records).
const CHUNK_BYTES: usize = 4 << 20;

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Show a progress bar (only when attached to a terminal).
    pub progress: bool,
    /// Set to stop reading; what was read is flushed and committed.
    pub stop: Arc<AtomicBool>,
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
}

impl RunSummary {
    pub fn records_per_sec(&self) -> f64 {
        self.records_read as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl std::fmt::Display for RunSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "pipeline {} → table {}", self.pipeline, self.table)?;
        writeln!(
            f,
            "  input      {} files ({} already complete), {:.1} MB",
            self.files,
            self.files_skipped,
            self.bytes_read as f64 / 1e6
        )?;
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
        write!(
            f,
            "  elapsed    {:.2} s ({:.0} records/s)",
            self.elapsed.as_secs_f64(),
            self.records_per_sec()
        )
    }
}

/// Decode + transform + conform: everything that runs on the worker pool.
struct Stage {
    decoder: NdjsonDecoder,
    transforms: Vec<Arc<dyn Transform>>,
    /// The table's Arrow schema as the writer expects it.
    table_schema: SchemaRef,
    /// Derived (non-identity) partition columns.
    partitions: Vec<PartitionSpec>,
    /// All partition columns of the table, in order.
    partition_columns: Vec<String>,
}

struct Processed {
    /// Good rows in table layout, split by partition.
    parts: Vec<PartBatch>,
    bad: Vec<BadRecord>,
    partition: String,
    end: u64,
    bytes: u64,
    lines: u64,
    filtered: u64,
}

impl Stage {
    fn process(&self, chunk: SourceBatch, skip_bad_before: u64) -> Processed {
        let decoded = self.decoder.decode(&chunk, skip_bad_before);
        let mut out = Processed {
            parts: Vec::new(),
            bad: decoded.bad,
            partition: chunk.start.partition.clone(),
            end: chunk.end,
            bytes: chunk.records.len() as u64,
            lines: decoded.lines as u64,
            filtered: 0,
        };
        let Some(batch) = decoded.batch else {
            return out;
        };
        let good_rows = batch.num_rows() as u64;
        let result = apply_all(&self.transforms, batch).and_then(|b| {
            let n = b.num_rows() as u64;
            let (batch, bad) = self.conform(b)?;
            let parts = lake::split_by_partition(batch, &self.partition_columns)?;
            Ok((n, (parts, bad)))
        });
        match result {
            Ok((after_transforms, (parts, bad))) => {
                out.filtered = good_rows - after_transforms;
                out.bad
                    .extend(bad.into_iter().map(|(raw, reason)| BadRecord {
                        partition: chunk.start.partition.clone(),
                        offset: chunk.start.offset,
                        raw,
                        kind: "missing_field",
                        reason,
                    }));
                out.parts = parts;
            }
            Err(e) => {
                // The chunk's good records cannot be written: dead-letter them with the
                // reason rather than lose them or stop the pipeline.
                for r in decoded.good {
                    out.bad.push(BadRecord {
                        partition: chunk.start.partition.clone(),
                        offset: chunk.start.offset + r.start as u64,
                        raw: chunk.records[r].to_vec(),
                        kind: "transform",
                        reason: e.to_string(),
                    });
                }
            }
        }
        out
    }

    /// Transform output → table layout: columns in table order, cast to table types,
    /// missing nullable columns as nulls, partition columns derived. Rows with a null in a
    /// required column are split off as (JSON of the row, reason).
    #[allow(clippy::type_complexity)]
    fn conform(&self, batch: RecordBatch) -> Result<(RecordBatch, Vec<(Vec<u8>, String)>)> {
        let n = batch.num_rows();
        let opts = CastOptions {
            safe: false,
            format_options: FormatOptions::default(),
        };
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(self.table_schema.fields().len());
        for f in self.table_schema.fields() {
            let col = match batch.schema().index_of(f.name()) {
                Ok(i) if batch.column(i).data_type() == f.data_type() => batch.column(i).clone(),
                Ok(i) => cast_with_options(batch.column(i), f.data_type(), &opts)?,
                Err(_) => new_null_array(f.data_type(), n),
            };
            cols.push(col);
        }
        let loose = Arc::new(arrow::datatypes::Schema::new(
            self.table_schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect::<Vec<_>>(),
        ));
        let mut batch = RecordBatch::try_new(loose, cols)?;
        batch = lake::add_partition_columns(batch, &self.partitions)?;

        // Required columns that came out null (a transform produced null, say).
        let mut mask: Option<arrow::array::BooleanArray> = None;
        for (i, f) in self.table_schema.fields().iter().enumerate() {
            if !f.is_nullable() && batch.column(i).null_count() > 0 {
                let nulls = is_null(batch.column(i))?;
                mask = Some(match mask {
                    None => nulls,
                    Some(m) => or(&m, &nulls)?,
                });
            }
        }
        let mut bad = Vec::new();
        if let Some(mask) = mask {
            let bad_rows = filter_record_batch(&batch, &mask)?;
            let mut buf = Vec::new();
            {
                let mut w = arrow_json::LineDelimitedWriter::new(&mut buf);
                w.write(&bad_rows)?;
                w.finish()?;
            }
            for line in buf.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                bad.push((
                    line.to_vec(),
                    "a required field is null after transforms".to_string(),
                ));
            }
            batch = filter_record_batch(&batch, &not(&mask)?)?;
        }
        let batch = RecordBatch::try_new(self.table_schema.clone(), batch.columns().to_vec())?;
        Ok((batch, bad))
    }
}

type Chunk = Result<(SourceBatch, u64)>;

/// Reads the files in order from their committed offsets, on a thread of its own.
fn spawn_reader(
    files: Vec<(InputFile, u64, u64)>,
    batch_size: usize,
    tx: tokio::sync::mpsc::Sender<Chunk>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for (file, offset, skip_bad_before) in files {
            let mut reader = match FileReader::open(&file, offset) {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e.into()));
                    return;
                }
            };
            loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                match reader.next_chunk(CHUNK_BYTES, batch_size) {
                    Ok(Some(chunk)) => {
                        if tx.blocking_send(Ok((chunk, skip_bad_before))).is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e.into()));
                        return;
                    }
                }
            }
        }
    })
}

/// Runs one pipeline to the end of its input (files) and commits everything read.
pub async fn run_pipeline(p: &Pipeline, lake: &Lake, opts: &RunOptions) -> Result<RunSummary> {
    let started = Instant::now();
    let settings = WriterSettings {
        target_file_bytes: p.sink.target_file_bytes,
        max_file_rows: p.sink.max_file_rows,
        row_group_rows: p.sink.row_group_rows,
        zstd_level: p.sink.zstd_level,
    };
    let table = lake
        .open_or_create(
            &p.table.name,
            &p.table.table_schema(),
            &p.table.partition_columns(),
            p.table.description.as_deref(),
        )
        .await?;
    // One Parquet encoder per worker: encoding runs in parallel with decoding.
    let mut main = TableSink::new(&p.table.name, table, &settings, p.parallelism)?;
    let mut dlq = match p.on_bad_record {
        BadRecordPolicy::Dlq => {
            let t = lake
                .open_or_create(
                    &p.dlq_table(),
                    &lake::dlq_schema(),
                    &[],
                    Some("dead-lettered records"),
                )
                .await?;
            Some(TableSink::new(&p.dlq_table(), t, &settings, 1)?)
        }
        _ => None,
    };

    let SourceKind::File(source) = &p.source;
    let files = source.list()?;
    let mut summary = RunSummary {
        pipeline: p.name.clone(),
        table: p.table.name.clone(),
        files: files.len(),
        ..Default::default()
    };
    // Resume points, from the tables' own commit log.
    let mut work = Vec::new();
    let mut pending = Pending::default();
    let mut total_bytes = 0;
    for f in files {
        let app = lake::app_id(&p.name, &f.id);
        let offset = lake::committed_offset(main.table(), &app).await?;
        let dlq_offset = match &dlq {
            Some(d) => lake::committed_offset(d.table(), &app).await?,
            None => 0,
        };
        pending.dlq_offsets.insert(f.id.clone(), dlq_offset);
        if f.compression == tributary_connectors::file::Compression::None && offset >= f.size {
            if offset > f.size {
                // Files are append-only inputs: a shorter file was replaced, and its new
                // content is not read again under the same name.
                tracing::warn!(file = %f.id, offset, size = f.size, "file is shorter than its committed offset (replaced?); skipping it");
            }
            summary.files_skipped += 1;
            continue;
        }
        if offset > 0 {
            tracing::info!(file = %f.id, offset, "resuming from committed offset");
        }
        total_bytes += f.size.saturating_sub(offset);
        work.push((f, offset, dlq_offset));
    }

    let stage = Arc::new(Stage {
        decoder: NdjsonDecoder::new(
            p.input.clone(),
            &required_fields(&p.table.record_schema()),
            p.max_record_bytes,
        ),
        transforms: p.transforms.clone(),
        table_schema: main.schema().clone(),
        partitions: p
            .table
            .partitions
            .iter()
            .filter(|s| s.transform != PartitionTransform::Identity)
            .cloned()
            .collect(),
        partition_columns: main.partition_columns().to_vec(),
    });

    let progress = progress_bar(opts.progress, total_bytes);
    let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(p.parallelism * 2);
    let reader = spawn_reader(work, p.batch_size, tx, opts.stop.clone());
    // Boxed (not stack-pinned) so that dropping it closes the channel and frees the reader.
    let mut stream = Box::pin(
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) })
            .map(|msg| {
                let stage = stage.clone();
                async move {
                    let (chunk, skip) = msg?;
                    tokio::task::spawn_blocking(move || stage.process(chunk, skip))
                        .await
                        .map_err(|e| Error::Internal(format!("worker panicked: {e}")))
                }
            })
            .buffered(p.parallelism),
    );

    let mut last_flush = Instant::now();
    let mut result = Ok(());
    while let Some(item) = stream.next().await {
        // On stop, what is queued but not yet in hand is left for the next run: only
        // chunks already handed to the sink are committed, so stopping is quick.
        if opts.stop.load(Ordering::Relaxed) {
            break;
        }
        let item = match item {
            Ok(i) => i,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        summary.records_read += item.lines;
        summary.bytes_read += item.bytes;
        summary.records_filtered += item.filtered;
        if !item.bad.is_empty() {
            match p.on_bad_record {
                BadRecordPolicy::Fail => {
                    let b = &item.bad[0];
                    result = Err(Error::BadRecord {
                        position: format!("{}@{}", b.partition, b.offset),
                        reason: format!("{} ({})", b.reason, b.kind),
                    });
                    break;
                }
                BadRecordPolicy::Drop => summary.dropped += item.bad.len() as u64,
                BadRecordPolicy::Dlq => pending.dead.extend(item.bad),
            }
        }
        main.write(item.parts).await?;
        pending.positions.insert(item.partition, item.end);
        progress.inc(item.bytes);
        progress.set_message(format!(
            "{} records, {} dead-lettered",
            summary.records_read,
            summary.dead_lettered + pending.dead.len() as u64
        ));
        if main.buffered_rows() >= p.sink.flush_rows
            || pending.dead.len() as u64 >= p.sink.flush_rows
            || last_flush.elapsed() >= p.sink.flush_interval
        {
            flush(p, &mut main, dlq.as_mut(), &mut pending, &mut summary).await?;
            last_flush = Instant::now();
        }
    }
    // Stop the reader before the final flush, whatever happened.
    drop(stream);
    let _ = reader.join();
    // Commit what was read; after a bad record under `fail`, what came before it is good.
    if result.is_ok() || matches!(result, Err(Error::BadRecord { .. })) {
        flush(p, &mut main, dlq.as_mut(), &mut pending, &mut summary).await?;
    }
    progress.finish_and_clear();
    result?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// What the sink has in hand and not yet committed.
#[derive(Default)]
struct Pending {
    /// Source partition → offset just past the last chunk handed to the sink.
    positions: HashMap<String, u64>,
    /// Bad records waiting for the dead-letter commit.
    dead: Vec<BadRecord>,
    /// The dead-letter table's committed offsets (they never move backwards).
    dlq_offsets: HashMap<String, u64>,
}

/// Commits dead letters first, then data: a crash in between re-reads the range from the
/// data table's offset, and the dead-letter table's own offset stops it adding them twice.
async fn flush(
    p: &Pipeline,
    main: &mut TableSink,
    dlq: Option<&mut TableSink>,
    pending: &mut Pending,
    summary: &mut RunSummary,
) -> Result<()> {
    let Pending {
        positions,
        dead,
        dlq_offsets,
    } = pending;
    if positions.is_empty() && dead.is_empty() {
        return Ok(());
    }
    let meta = |n: usize| {
        HashMap::from([
            ("tributary.pipeline".to_string(), serde_json::json!(p.name)),
            ("tributary.records".to_string(), serde_json::json!(n)),
        ])
    };
    if let Some(dlq) = dlq
        && !dead.is_empty()
    {
        let txns: Vec<Transaction> = positions
            .iter()
            .map(|(part, end)| {
                let prev = dlq_offsets.get(part).copied().unwrap_or(0);
                let v = (*end).max(prev);
                dlq_offsets.insert(part.clone(), v);
                Transaction::new(lake::app_id(&p.name, part), v as i64)
            })
            .collect();
        let batch = lake::dlq_batch(&p.name, dead, dlq.schema())?;
        dlq.write(lake::split_by_partition(batch, &[])?).await?;
        if dlq.commit(txns, meta(dead.len())).await?.is_some() {
            summary.commits += 1;
        }
        summary.dead_lettered += dead.len() as u64;
        dead.clear();
    }
    let rows = main.buffered_rows();
    let txns: Vec<Transaction> = positions
        .iter()
        .map(|(part, end)| Transaction::new(lake::app_id(&p.name, part), *end as i64))
        .collect();
    if let Some(stats) = main.commit(txns, meta(rows as usize)).await? {
        summary.commits += 1;
        summary.data_files += stats.files;
        summary.bytes_written += stats.bytes;
        summary.records_written += stats.rows;
        tracing::info!(table = %p.table.name, version = stats.version, files = stats.files, rows = stats.rows, "commit");
    }
    positions.clear();
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
