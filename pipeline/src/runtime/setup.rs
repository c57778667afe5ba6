//! What a run (or a stage process) sets up before reading: the table sinks, the inputs of
//! a file or S3 source, and the decode → transform → partition work for the table's layout.

use tributary_connectors::SourceKind;

use super::feed::{Opener, Poll};
use super::stage::Stage;
use crate::config::{BadRecordPolicy, Pipeline};
use crate::decode::{NdjsonDecoder, required_fields};
use crate::error::{Error, Result};
use crate::lake::{self, Lake, TableSink, WriterSettings};
use crate::schema::PartitionTransform;

/// Parquet writer tasks per worker. A partition stays with one writer (one file per
/// partition per commit), so as many writers as workers split a few partitions unevenly:
/// the benchmark's 7 day partitions on 2 writers put 4/7 of the encoding on one, and the
/// other core idled ~5 % of the run. More writers let tokio spread them; an idle one
/// costs a task and a channel, and the open files are the same (one per partition).
const WRITERS_PER_WORKER: usize = 4;

/// The table's sink and, under `on_bad_record = "dlq"`, its DLQ's (created if missing).
pub(super) async fn open_sinks(
    p: &Pipeline,
    lake: &Lake,
) -> Result<(TableSink, Option<TableSink>)> {
    let settings = writer_settings(p);
    let writers = p.parallelism.max(1) * WRITERS_PER_WORKER;
    let main = TableSink::new(
        &p.table.name,
        open_table(p, lake).await?,
        &settings,
        writers,
    )?;
    let dlq = match p.on_bad_record {
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
    Ok((main, dlq))
}

fn writer_settings(p: &Pipeline) -> WriterSettings {
    WriterSettings {
        target_file_bytes: p.sink.target_file_bytes,
        max_file_rows: p.sink.max_file_rows,
        row_group_rows: p.sink.row_group_rows,
        zstd_level: p.sink.zstd_level,
    }
}

/// The table's sink alone (a stage that needs its layout, not its DLQ).
pub(super) async fn open_main(p: &Pipeline, lake: &Lake) -> Result<TableSink> {
    TableSink::new(
        &p.table.name,
        open_table(p, lake).await?,
        &writer_settings(p),
        1,
    )
}

/// The pipeline's table (created from its schema if missing).
pub(crate) async fn open_table(p: &Pipeline, lake: &Lake) -> Result<deltalake::DeltaTable> {
    lake.open_or_create(
        &p.table.name,
        &p.table.table_schema(),
        &p.table.partition_columns(),
        p.table.description.as_deref(),
    )
    .await
}

/// The inputs of a file or S3 source, how to open them, and (S3 with a poll interval) how
/// to look for new ones. `only`: just these objects (a Lambda S3 notification).
pub(super) async fn list_inputs(
    p: &Pipeline,
    only: Option<&std::collections::BTreeSet<String>>,
) -> Result<(
    Vec<tributary_connectors::file::InputFile>,
    Opener,
    Option<Poll>,
)> {
    match &p.source {
        SourceKind::File(f) => Ok((f.list()?, Opener::Local, None)),
        SourceKind::S3(s) => {
            let store = tributary_connectors::aws::s3_store(&s.bucket, &s.aws).await?;
            let files = match only {
                Some(keys) => s.list_keys(&store, keys).await?,
                None => s.list(&store).await?,
            };
            let poll = s.poll_interval.map(|interval| Poll {
                source: s.clone(),
                store: store.clone(),
                interval,
                seen: files.iter().map(|f| f.id.clone()).collect(),
                caught_up: Poll::tracker(),
            });
            let opener = Opener::S3(store, tokio::runtime::Handle::current());
            Ok((files, opener, poll))
        }
        SourceKind::Kinesis(k) => Err(Error::Usage(format!(
            "pipeline `{}` reads Kinesis stream `{}`: split stages read files and S3 objects (streams scale per shard: run more processes, or Lambda)",
            p.name, k.stream
        ))),
    }
}

/// The decode → dedupe → transform → partition work for `main`'s table layout.
pub(super) fn build_stage(p: &Pipeline, main: &TableSink) -> Stage {
    Stage {
        decoder: NdjsonDecoder::new(
            p.input.clone(),
            &required_fields(&p.table.record_schema()),
            p.max_record_bytes,
        ),
        transforms: p.transforms.clone(),
        dedupe_key: p.dedupe_key.clone(),
        table_schema: main.schema().clone(),
        partitions: p
            .table
            .partitions
            .iter()
            .filter(|s| s.transform != PartitionTransform::Identity)
            .cloned()
            .collect(),
        partition_columns: main.partition_columns().to_vec(),
    }
}
