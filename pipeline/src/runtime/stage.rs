//! Decode + transform + conform, on the worker pool: bytes in, partitioned table rows and
//! bad records out.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, new_null_array};
use arrow::compute::{CastOptions, cast_with_options, filter_record_batch, is_null, not, or};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::util::display::FormatOptions;
use tributary_connectors::{Offset, SourceBatch};

use crate::decode::{BadRecord, NdjsonDecoder};
use crate::error::Result;
use crate::lake::{self, PartBatch};
use crate::schema::PartitionSpec;
use crate::transform::{Transform, apply_all};

/// Decode + transform + conform: everything that runs on the worker pool.
pub(super) struct Stage {
    pub decoder: NdjsonDecoder,
    pub transforms: Vec<Arc<dyn Transform>>,
    /// Repeats of this field within a batch are dead-lettered as duplicates.
    pub dedupe_key: Option<String>,
    /// The table's Arrow schema as the writer expects it.
    pub table_schema: SchemaRef,
    /// Derived (non-identity) partition columns.
    pub partitions: Vec<PartitionSpec>,
    /// All partition columns of the table, in order.
    pub partition_columns: Vec<String>,
}

pub(super) struct Processed {
    /// Good rows in table layout, split by partition.
    pub parts: Vec<PartBatch>,
    pub bad: Vec<BadRecord>,
    pub partition: String,
    pub end: Offset,
    /// Id of the chunk's first record (streams), to check ownership before a commit.
    pub first_id: Option<String>,
    pub bytes: u64,
    pub lines: u64,
    pub filtered: u64,
}

impl Stage {
    pub(super) fn process(&self, chunk: SourceBatch, skip_bad_before: u64) -> Processed {
        let mut decoded = self.decoder.decode(&chunk, skip_bad_before);
        if let Some(key) = &self.dedupe_key {
            dedupe(&mut decoded, key, &chunk, skip_bad_before);
        }
        let mut out = Processed {
            parts: Vec::new(),
            bad: decoded.bad,
            partition: chunk.start.partition.clone(),
            end: chunk.end.clone(),
            first_id: chunk.ids.first().map(|(_, id)| id.clone()),
            bytes: chunk.records.len() as u64,
            lines: decoded.lines as u64,
            filtered: 0,
        };
        let Some(batch) = decoded.batch else {
            name_records(&chunk, &mut out.bad);
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
                        record_id: None,
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
                        record_id: None,
                    });
                }
            }
        }
        name_records(&chunk, &mut out.bad);
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

/// Stream records carry ids (Kinesis `sequence[:sub]`): name each bad record by its id.
fn name_records(chunk: &SourceBatch, bad: &mut [BadRecord]) {
    if chunk.ids.is_empty() {
        return;
    }
    for b in bad.iter_mut() {
        if b.record_id.is_none() {
            b.record_id = chunk.record_id(b.offset).map(str::to_string);
        }
    }
}

/// Keeps the first record of each `key` value in the decoded batch; the repeats become bad
/// records of kind `duplicate` (null keys are never duplicates).
fn dedupe(
    decoded: &mut crate::decode::Decoded,
    key: &str,
    chunk: &SourceBatch,
    skip_bad_before: u64,
) {
    let Some(batch) = &decoded.batch else { return };
    let Some(col) = batch.column_by_name(key) else {
        return;
    };
    let Ok(values) = arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8) else {
        return;
    };
    let Some(values) = values.as_any().downcast_ref::<arrow::array::StringArray>() else {
        return;
    };
    let mut first: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut keep = Vec::with_capacity(values.len());
    let mut bad = Vec::new();
    for i in 0..values.len() {
        if values.is_null(i) {
            keep.push(true);
            continue;
        }
        let v = values.value(i);
        match first.get(v) {
            None => {
                first.insert(v, i);
                keep.push(true);
            }
            Some(&j) => {
                keep.push(false);
                let r = decoded.good[i].clone();
                let offset = chunk.start.offset + r.start as u64;
                if offset >= skip_bad_before {
                    bad.push(BadRecord {
                        partition: chunk.start.partition.clone(),
                        offset,
                        raw: chunk.records[r].to_vec(),
                        kind: "duplicate",
                        reason: format!(
                            "duplicate {key} `{v}`: the same value is at offset {} of this batch (dedupe_key keeps the first)",
                            chunk.start.offset + decoded.good[j].start as u64
                        ),
                        record_id: None,
                    });
                }
            }
        }
    }
    if bad.is_empty() && keep.iter().all(|k| *k) {
        return;
    }
    let mask = arrow::array::BooleanArray::from(keep.clone());
    match filter_record_batch(batch, &mask) {
        Ok(b) => {
            decoded.batch = (b.num_rows() > 0).then_some(b);
            let mut it = keep.iter();
            decoded.good.retain(|_| *it.next().unwrap_or(&true));
            decoded.bad.extend(bad);
        }
        Err(e) => tracing::warn!(error = %e, "dedupe skipped for a batch"),
    }
}
