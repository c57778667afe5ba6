//! Writing one table: batches stream into Parquet files (partitioned, rolled by size) and a
//! commit makes a set of files visible together with the source positions they cover.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use deltalake::DeltaTable;
use deltalake::kernel::Add;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Transaction};
use deltalake::parquet::basic::{Compression, ZstdLevel};
use deltalake::parquet::file::properties::{
    EnabledStatistics, WriterProperties, WriterPropertiesBuilder,
};
use deltalake::parquet::schema::types::ColumnPath;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter, WriteMode};
use tokio::sync::{mpsc, oneshot};

use super::partition::PartBatch;

use crate::decode::BadRecord;
use crate::error::{Error, Result};

/// The commitInfo field holding a commit's own id (`commit` reads it back).
const COMMIT_ID_KEY: &str = "tributary.commit";
/// Times a commit may find itself replaced (a store without atomic create-only puts)
/// before the writer gives up with an error.
const MAX_REPLACED: u32 = 5;

/// Rounds of deltalake's commit retries (15 attempts each) a commit may lose to other
/// writers before it fails: four writers on a busy machine with slow acknowledgements lost
/// all 15 attempts of one round.
const MAX_CONTENDED: u32 = 8;

/// Whether `e` says other writers won every attempt of a commit (not that it is invalid).
fn contended(e: &deltalake::DeltaTableError) -> bool {
    matches!(
        e,
        deltalake::DeltaTableError::Transaction {
            source: deltalake::kernel::transaction::TransactionError::MaxCommitAttempts(_)
        }
    )
}

/// A random wait before contention round `round`: up to 100 ms doubled per round, capped at
/// 5 s, so that the writers that collided spread out.
fn backoff(round: u32) -> std::time::Duration {
    let cap = (100u64 << round.min(6)).min(5_000);
    std::time::Duration::from_millis(cap / 2 + fastrand::u64(0..=cap / 2))
}

#[derive(Debug, Clone)]
pub struct WriterSettings {
    pub target_file_bytes: u64,
    /// Files are closed once the shard's open files hold this many rows.
    pub max_file_rows: u64,
    pub row_group_rows: usize,
    pub zstd_level: i32,
}

/// What one commit added.
#[derive(Debug, Clone, Default)]
pub struct CommitStats {
    pub version: i64,
    pub files: usize,
    pub bytes: u64,
    pub rows: u64,
}

/// Messages to one writer shard.
enum ShardMsg {
    Write(PartBatch),
    /// Close the open files and hand back their `Add` actions.
    Flush(oneshot::Sender<Result<Vec<Add>>>),
}

/// One Parquet writer on a task of its own. A partition always goes to the same shard, so
/// its rows stay in order and each flush writes one file per partition (or per size roll).
struct Shard {
    tx: mpsc::Sender<ShardMsg>,
    rows: u64,
}

async fn shard_loop(
    mut writer: RecordBatchWriter,
    mut rx: mpsc::Receiver<ShardMsg>,
    max_file_rows: u64,
) {
    // The first write error is kept and reported at the next flush (which then commits
    // nothing): the data of a failed write must not be committed as if complete.
    let mut failed: Option<Error> = None;
    // Files closed early by the row limit: written, not yet committed.
    let mut closed: Vec<Add> = Vec::new();
    let mut open_rows = 0u64;
    while let Some(msg) = rx.recv().await {
        match msg {
            ShardMsg::Write(part) => {
                if failed.is_none()
                    && let Err(e) = write_capped(
                        &mut writer,
                        part,
                        max_file_rows,
                        &mut open_rows,
                        &mut closed,
                    )
                    .await
                {
                    failed = Some(e);
                }
            }
            ShardMsg::Flush(reply) => {
                open_rows = 0;
                let result = match failed.take() {
                    Some(e) => {
                        writer.reset();
                        closed.clear();
                        Err(e)
                    }
                    None => writer.flush().await.map_err(Error::from).map(|mut adds| {
                        adds.append(&mut closed);
                        adds
                    }),
                };
                let _ = reply.send(result);
            }
        }
    }
}

/// Writes a partition's rows, closing the shard's files whenever they reach
/// `max_file_rows` (so no file holds more).
async fn write_capped(
    writer: &mut RecordBatchWriter,
    part: PartBatch,
    max_file_rows: u64,
    open_rows: &mut u64,
    closed: &mut Vec<Add>,
) -> Result<()> {
    let mut rest = part.batch;
    while rest.num_rows() > 0 {
        let room = max_file_rows.saturating_sub(*open_rows).max(1) as usize;
        let n = room.min(rest.num_rows());
        let head = rest.slice(0, n);
        rest = rest.slice(n, rest.num_rows() - n);
        writer
            .write_partition(head, &part.values, WriteMode::Default)
            .await?;
        *open_rows += n as u64;
        if *open_rows >= max_file_rows {
            closed.extend(writer.flush().await?);
            *open_rows = 0;
        }
    }
    Ok(())
}

/// Writes one table: batches are encoded to Parquet by `shards` writers in parallel, and a
/// commit makes everything written since the last one visible at once.
pub struct TableSink {
    name: String,
    table: DeltaTable,
    schema: SchemaRef,
    partitions: Vec<String>,
    shards: Vec<Shard>,
    /// Partition key → shard, assigned to the least-loaded shard on first sight.
    assignment: HashMap<String, usize>,
    buffered_rows: u64,
    /// Shards not started yet: they start at the first write, tuned to its rows.
    pending: Option<PendingShards>,
}

struct PendingShards {
    props: WriterPropertiesBuilder,
    row_group_rows: usize,
    settings: WriterSettings,
    count: usize,
}

/// Top-level columns of a sample whose non-null values are more than half distinct (at
/// least 1,000 of them seen, so a small batch decides nothing): string columns first (ids),
/// then 8-byte ones (timestamps, measures).
fn high_cardinality_columns(sample: &RecordBatch) -> (Vec<String>, Vec<String>) {
    let (mut strings, mut wide) = (Vec::new(), Vec::new());
    for (field, col) in sample.schema().fields().iter().zip(sample.columns()) {
        let n = col.len().min(10_000);
        let valid = (0..n).filter(|i| col.is_valid(*i));
        if let Some(values) = col.as_string_opt::<i32>() {
            if mostly_distinct(valid.map(|i| values.value(i))) {
                strings.push(field.name().clone());
            }
        } else if col.data_type().is_primitive() && col.data_type().primitive_width() == Some(8) {
            let data = col.to_data();
            let bits = data.buffer::<u64>(0);
            if mostly_distinct(valid.filter_map(|i| bits.get(i).copied())) {
                wide.push(field.name().clone());
            }
        }
    }
    (strings, wide)
}

/// At least 1,000 values, more than half of them distinct.
fn mostly_distinct<T: std::hash::Hash + Eq>(values: impl Iterator<Item = T>) -> bool {
    let (mut seen, mut distinct) = (0usize, std::collections::HashSet::new());
    for v in values {
        seen += 1;
        distinct.insert(v);
    }
    seen >= 1_000 && distinct.len() * 2 > seen
}

impl TableSink {
    pub fn new(
        name: &str,
        table: DeltaTable,
        settings: &WriterSettings,
        shards: usize,
    ) -> Result<Self> {
        let level = ZstdLevel::try_new(settings.zstd_level)?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_max_row_group_row_count(Some(settings.row_group_rows))
            .set_statistics_enabled(EnabledStatistics::Page);
        let schema = RecordBatchWriter::for_table(&table)?.arrow_schema();
        let partitions = table.snapshot()?.metadata().partition_columns().to_vec();
        Ok(Self {
            name: name.to_string(),
            table,
            schema,
            partitions,
            shards: Vec::new(),
            pending: Some(PendingShards {
                props,
                row_group_rows: settings.row_group_rows,
                settings: settings.clone(),
                count: shards.max(1),
            }),
            assignment: HashMap::new(),
            buffered_rows: 0,
        })
    }

    /// Starts the shards, with writer properties tuned to the first rows written: string
    /// columns whose values are mostly distinct (ids) skip dictionary encoding, which
    /// they would abandon anyway after filling a dictionary page — hashing them first was
    /// ~8 % of ingest CPU on the benchmark's events — and get bloom filters instead.
    fn start_shards(&mut self, sample: &RecordBatch) -> Result<()> {
        let Some(pending) = self.pending.take() else {
            return Ok(());
        };
        let mut props = pending.props;
        let (strings, wide) = high_cardinality_columns(sample);
        for name in wide {
            // Event times, amounts: a dictionary of mostly distinct values is hashed for
            // nothing and abandoned once its page fills.
            tracing::debug!(table = %self.name, column = %name, "dictionary encoding off: values mostly distinct");
            props = props.set_column_dictionary_enabled(ColumnPath::from(name), false);
        }
        for name in strings {
            // Such columns are ids, looked up by value: a bloom filter per row group lets
            // a point query skip the row groups that cannot hold the id (min/max cannot,
            // ids are not sorted).
            tracing::debug!(table = %self.name, column = %name, "dictionary encoding off, bloom filter on: values mostly distinct");
            let path = ColumnPath::from(name);
            props = props
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_bloom_filter_enabled(path.clone(), true)
                .set_column_bloom_filter_max_ndv(path, pending.row_group_rows as u64);
        }
        let props = props.build();
        for _ in 0..pending.count {
            let writer = RecordBatchWriter::for_table(&self.table)?
                .with_writer_properties(props.clone())
                .with_target_file_size(pending.settings.target_file_bytes);
            // Short queues: there are several writers per worker, and the decode workers'
            // chunks in flight are the slack that keeps the cores busy.
            let (tx, rx) = mpsc::channel(2);
            tokio::spawn(shard_loop(writer, rx, pending.settings.max_file_rows));
            self.shards.push(Shard { tx, rows: 0 });
        }
        Ok(())
    }

    /// The table's Arrow schema, as the writer expects batches.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    pub fn partition_columns(&self) -> &[String] {
        &self.partitions
    }

    pub fn buffered_rows(&self) -> u64 {
        self.buffered_rows
    }

    /// Hands batches (already split by partition) to their shards; waits only when a
    /// shard's queue is full (backpressure).
    pub async fn write(&mut self, parts: Vec<PartBatch>) -> Result<()> {
        if self.pending.is_some()
            && let Some(first) = parts.iter().max_by_key(|p| p.batch.num_rows())
        {
            self.start_shards(&first.batch)?;
        }
        for part in parts {
            let n = part.batch.num_rows() as u64;
            if n == 0 {
                continue;
            }
            let shard = match self.assignment.get(&part.key) {
                Some(s) => *s,
                None => {
                    let s = (0..self.shards.len())
                        .min_by_key(|i| self.shards[*i].rows)
                        .unwrap_or(0);
                    self.assignment.insert(part.key.clone(), s);
                    s
                }
            };
            self.shards[shard].rows += n;
            self.buffered_rows += n;
            self.shards[shard]
                .tx
                .send(ShardMsg::Write(part))
                .await
                .map_err(|_| Error::Internal(format!("writer of table `{}` stopped", self.name)))?;
        }
        Ok(())
    }

    /// Closes the open files and commits them with `txns` (source positions) in one Delta
    /// commit. Returns `None` when there was nothing to commit.
    pub async fn commit(
        &mut self,
        txns: Vec<Transaction>,
        metadata: HashMap<String, serde_json::Value>,
    ) -> Result<Option<CommitStats>> {
        let mut replies = Vec::new();
        for s in &self.shards {
            let (tx, rx) = oneshot::channel();
            s.tx.send(ShardMsg::Flush(tx))
                .await
                .map_err(|_| Error::Internal(format!("writer of table `{}` stopped", self.name)))?;
            replies.push(rx);
        }
        let mut adds = Vec::new();
        let mut first_err = None;
        for rx in replies {
            match rx.await {
                Ok(Ok(a)) => adds.extend(a),
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(Error::Internal("a writer shard stopped".into()));
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        if adds.is_empty() && txns.is_empty() {
            return Ok(None);
        }
        let stats = CommitStats {
            version: 0,
            files: adds.len(),
            bytes: adds.iter().map(|a| a.size.max(0) as u64).sum(),
            rows: self.buffered_rows,
        };
        // An id of this commit, in its commitInfo: to recognise it in the log when its
        // acknowledgement is lost, and to check that the version it got holds it.
        let commit_id = uuid::Uuid::new_v4().simple().to_string();
        let mut metadata = metadata;
        metadata.insert(COMMIT_ID_KEY.into(), serde_json::json!(commit_id));
        let actions: Vec<Action> = adds.into_iter().map(Action::Add).collect();
        let op = DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: (!self.partitions.is_empty()).then(|| self.partitions.clone()),
            predicate: None,
        };
        let mut attempt = 0;
        let mut contention = 0;
        let version = loop {
            let read_version = self.table.version();
            let props = CommitProperties::default()
                .with_application_transactions(txns.clone())
                .with_metadata(metadata.clone());
            let committed = CommitBuilder::from(props)
                .with_actions(actions.clone())
                .build(
                    Some(self.table.snapshot()?),
                    self.table.log_store(),
                    op.clone(),
                )
                .await;
            let version = match committed {
                Ok(finalized) => finalized.version(),
                // The log entry may have been written and only its answer lost (a dropped
                // connection): the retried write then finds "its" version taken, by itself.
                // Found in the log, the commit stands; not found, it failed.
                Err(e) => match read_version {
                    Some(from) => match self.find_commit(&commit_id, from).await? {
                        Some(v) => {
                            tracing::warn!(table = %self.name, version = v, error = %e, "the commit landed, but its acknowledgement was lost; going on");
                            v
                        }
                        // Outraced on every one of deltalake's attempts (many writers, a slow
                        // store): contention passes, so wait a random while and start over.
                        None if contended(&e) && contention < MAX_CONTENDED => {
                            contention += 1;
                            let wait = backoff(contention);
                            tracing::warn!(table = %self.name, round = contention, wait_ms = wait.as_millis() as u64, "other writers won every commit attempt; trying again");
                            tokio::time::sleep(wait).await;
                            self.table.update_state().await?;
                            continue;
                        }
                        None => return Err(e.into()),
                    },
                    None => return Err(e.into()),
                },
            };
            // Read back: a store whose create-only put is not atomic (two writers of one
            // version both told it succeeded) lets another commit replace this one. Seen
            // here, the commit is made again at a new version instead of being reported done
            // while missing from the table.
            if self.version_holds(version, &commit_id).await? {
                break version;
            }
            attempt += 1;
            tracing::error!(table = %self.name, version, attempt, "the commit was replaced by another writer's: the store does not make create-only puts atomic; committing again");
            if attempt >= MAX_REPLACED {
                return Err(Error::Internal(format!(
                    "table `{}`: commits keep being replaced by other writers' ({attempt} times): the lake's store does not make create-only (If-None-Match) puts atomic, which concurrent writers need",
                    self.name
                )));
            }
            self.table.update_state().await?;
        };
        self.table.update_state().await?;
        self.buffered_rows = 0;
        for s in &mut self.shards {
            s.rows = 0;
        }
        let version = version as i64;
        tracing::debug!(table = %self.name, version, files = stats.files, "committed");
        Ok(Some(CommitStats { version, ..stats }))
    }

    /// Whether the log entry of `version` is the commit `id`.
    async fn version_holds(&self, version: u64, id: &str) -> Result<bool> {
        let bytes = self.table.log_store().read_commit_entry(version).await?;
        Ok(bytes.is_some_and(|b| memchr::memmem::find(&b, id.as_bytes()).is_some()))
    }

    /// The version after `from` whose log entry is the commit `id`, if any.
    async fn find_commit(&mut self, id: &str, from: u64) -> Result<Option<u64>> {
        self.table.update_state().await?;
        let latest = self.table.version().unwrap_or(from);
        for v in from + 1..=latest {
            if self.version_holds(v, id).await? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    pub fn table(&self) -> &DeltaTable {
        &self.table
    }

    /// Brings the table's view up to its latest commit (other writers' commits included).
    pub async fn refresh(&mut self) -> Result<()> {
        self.table.update_state().await?;
        Ok(())
    }
}

/// Columns of every dead-letter table.
pub fn dlq_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("pipeline", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("position", DataType::Int64, false),
        Field::new("error_kind", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, false),
        Field::new("raw", DataType::Utf8, false),
        // The source's id of the record (Kinesis `sequence[:sub-sequence]`); null for files.
        Field::new("record_id", DataType::Utf8, true),
        Field::new(
            "dead_lettered_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]))
}

/// Bad records as a dead-letter batch. Raw bytes that are not UTF-8 are kept lossily
/// (with U+FFFD), the reason says so.
pub fn dlq_batch(pipeline: &str, bad: &[BadRecord], schema: &SchemaRef) -> Result<RecordBatch> {
    let now = chrono::Utc::now().timestamp_micros();
    let n = bad.len();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![pipeline; n])),
        Arc::new(StringArray::from_iter_values(
            bad.iter().map(|b| b.partition.as_str()),
        )),
        Arc::new(Int64Array::from_iter_values(
            bad.iter().map(|b| b.offset as i64),
        )),
        Arc::new(StringArray::from_iter_values(bad.iter().map(|b| b.kind))),
        Arc::new(StringArray::from_iter_values(
            bad.iter().map(|b| b.reason.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            bad.iter()
                .map(|b| String::from_utf8_lossy(&b.raw).into_owned()),
        )),
        Arc::new(StringArray::from_iter(
            bad.iter().map(|b| b.record_id.as_deref()),
        )),
        Arc::new(TimestampMicrosecondArray::from(vec![now; n]).with_timezone("UTC")),
    ];
    RecordBatch::try_new(schema.clone(), cols).map_err(Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mostly_distinct_columns_are_found_from_a_sample() {
        let n = 2_000;
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("country", DataType::Utf8, true),
            Field::new("at", DataType::Int64, true),
            Field::new("qty", DataType::Int64, true),
        ]));
        let ids: Vec<String> = (0..n).map(|i| format!("id-{i}")).collect();
        let countries: Vec<&str> = (0..n).map(|i| ["DE", "FR", "US"][i % 3]).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(ids)),
                Arc::new(StringArray::from(countries)),
                Arc::new(Int64Array::from_iter_values(0..n as i64)),
                Arc::new(Int64Array::from_iter_values((0..n as i64).map(|i| i % 5))),
            ],
        )
        .unwrap();
        let (strings, wide) = high_cardinality_columns(&batch);
        assert_eq!(strings, ["id"]);
        assert_eq!(wide, ["at"]);
        // Too few rows to judge: nothing is switched off.
        let (strings, wide) = high_cardinality_columns(&batch.slice(0, 100));
        assert!(strings.is_empty() && wide.is_empty());
    }
}
